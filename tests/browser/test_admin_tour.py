"""The operator's tour of the admin in a real browser (issue 6): what a person clicks and reads.

Every step checks the text the operator would see, every page is screenshotted under
test-artifacts/screenshots/, and no page may log a console error or fetch from another host.
"""

import csv
import datetime
import io
import re

import pytest
from django.utils import timezone

from promotions.models import PromoCode
from tests.factories import (
    ClientFactory,
    CurrencyFactory,
    PromotionFactory,
    ProviderFactory,
    TariffFactory,
    UserFactory,
)

try:
    from playwright.sync_api import expect
except ImportError:  # the `browser` fixture skips, or fails in CI, saying what to install
    expect = None

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]

USERNAME, PASSWORD = "operator", "tour-secret"
PROMOTION = "Spring sale"
WHEN = re.compile(r"^\d{4}-\d\d-\d\d \d\d:\d\d UTC$")
LOCAL_IP = re.compile(r"^(127\.0\.0\.1|::1)$")
# How long the promotion page with 1,000 codes may take (see the last test).
HEAVY_PAGE_MS = 90_000
CONDITIONS = "(registered within the last 1 year(s) OR active services >= 5)"
PRODUCT = "Promotions & referrals engine"


def pick(page, select_id: str, text: str) -> None:
    """Choose in an autocomplete picker as a person does: open it, type, click the match."""
    page.click(f"#{select_id} + .select2 .select2-selection")
    page.fill(".select2-container--open .select2-search__field", text)
    page.click(f".select2-results__option:text-is('{text}')")
    expect(page.locator(f"#{select_id} + .select2 .select2-selection__rendered")).to_contain_text(
        text
    )


@pytest.fixture
def substrate():
    """The operator and the billing side a promotion needs: a provider, its tariff and client."""
    UserFactory(username=USERNAME, password=PASSWORD, is_staff=True, is_superuser=True)
    provider = ProviderFactory(name="Acme Hosting", currency=CurrencyFactory(iso="USD"))
    return {
        "provider": provider,
        "tariff": TariffFactory(name="VPS S", provider=provider, price="10.00"),
        "client": ClientFactory(name="Ann Example", provider=provider),
    }


def log_in(tour, *, shots: bool = False) -> None:
    page = tour.page
    tour.goto("/admin/")
    expect(page).to_have_url(re.compile(r"/admin/login/\?next=/admin/$"))
    expect(page.locator("#site-name")).to_contain_text(PRODUCT)
    if shots:
        page.fill("#id_username", USERNAME)
        page.fill("#id_password", "wrong")
        page.click("input[type=submit]")
        expect(page.locator(".errornote")).to_contain_text(
            "Please enter the correct username and password"
        )
        tour.shot("01-login-refused")
    page.fill("#id_username", USERNAME)
    page.fill("#id_password", PASSWORD)
    if shots:
        tour.shot("02-login")
    page.click("input[type=submit]")
    expect(page.locator("#content h1")).to_have_text("Dashboard")
    expect(page.locator("#user-tools")).to_contain_text(f"Welcome, {USERNAME}", ignore_case=True)
    if shots:
        tour.shot("03-admin-index")


def changelist_action(tour, promotion_id: int, action: str) -> None:
    """Tick the promotion's row in the changelist, pick the action and press Go."""
    page = tour.page
    tour.goto("/admin/promotions/promotion/")
    page.check(f"input[name=_selected_action][value='{promotion_id}']")
    expect(page.locator(".action-counter")).to_contain_text("1 of 1 selected")
    page.select_option("select[name=action]", action)
    page.click("button[name=index]")


def test_operator_runs_a_promotion_from_creation_to_archive(tour, substrate, tmp_path):
    page = tour.page
    today = timezone.localdate()

    # Log in (a wrong password is refused first).
    log_in(tour, shots=True)

    # Create the promotion on its add page: a discount for 1- and 12-month orders (ticked), and
    # two conditions typed into one group, which makes them OR-ed.
    page.click("#content-main a[href='/admin/promotions/promotion/add/']")
    expect(page.locator("#content h1")).to_have_text("Add promotion")
    page.fill("#id_name", PROMOTION)
    page.select_option("#id_provider", label="Acme Hosting")
    page.fill("#id_fromdate", (today - datetime.timedelta(days=1)).isoformat())
    page.fill("#id_todate", (today + datetime.timedelta(days=30)).isoformat())
    page.click("#discounts-group .add-row a")
    page.fill("[name=discounts-0-percentage]", "10")
    page.check("[name=discounts-0-period][value='1']")
    page.check("[name=discounts-0-period][value='12']")
    page.click("#groups-group .add-row a")
    page.fill("[name=groups-0-name]", "new or loyal")
    page.click("#conditions-group .add-row a")
    page.select_option("[name=conditions-0-ctype]", "registration")
    page.select_option("[name=conditions-0-periodtype]", "year")
    page.fill("[name=conditions-0-periodlength]", "1")
    page.fill("[name=conditions-0-group_name]", "new or loyal")
    page.click("#conditions-group .add-row a")
    page.select_option("[name=conditions-1-ctype]", "service_count")
    page.select_option("[name=conditions-1-comparison]", "ge")
    page.fill("[name=conditions-1-amount]", "5")
    page.fill("[name=conditions-1-group_name]", "new or loyal")
    tour.shot("04-promotion-add", docs=True)
    page.click("input[name=_continue]")
    expect(page.locator(".messagelist")).to_contain_text(
        f"The promotion “{PROMOTION}” was added successfully"
    )
    promotion_id = int(re.search(r"/promotion/(\d+)/change/", page.url).group(1))
    glance = page.locator(".field-at_a_glance")
    expect(glance).to_contain_text("active")
    expect(glance).to_contain_text(
        "10% on all tariffs, new orders and renewals, on orders of 1 or 12 months"
    )
    expect(page.locator(".field-at_a_glance code.conditions")).to_have_text(CONDITIONS)
    expect(glance).to_contain_text("0 codes, 0 uses")
    expect(page.locator("[name=groups-0-name]")).to_have_value("new or loyal")
    expect(page.locator("[name=conditions-0-group_name]")).to_have_value("new or loyal")
    expect(page.locator("[name=discounts-0-period][value='12']")).to_be_checked()
    expect(page.locator("[name=discounts-0-period][value='3']")).not_to_be_checked()
    tour.shot("05-promotion-conditions", docs=True)

    # Generate 1,000 codes from the changelist: a background job whose progress page completes.
    changelist_action(tour, promotion_id, "generate_codes")
    expect(page.locator("#content h1")).to_have_text("Generate promo codes")
    expect(page.locator("#content")).to_contain_text(f"Generate promo codes for: {PROMOTION}")
    page.fill("#id_template", "PW-??????")
    page.fill("#id_count", "1000")
    tour.shot("06-generate-codes")
    page.click("input[name=apply]")
    expect(page).to_have_url(re.compile(r"/admin/common/job/\d+/progress/$"))
    expect(page.locator("#content h1")).to_have_text("Generating 1000 promo codes from PW-??????")
    expect(page.locator("#job-status")).to_have_text("done")
    expect(page.locator("#job")).to_contain_text("1000 of 1000")
    expect(page.locator("#job-percent")).to_have_text("100")
    expect(page.locator("#job-message")).to_have_text("1000 promo code(s) generated.")
    expect(page.locator("#job-bar")).to_have_attribute("value", "1000")
    expect(page.locator("#job-links a").first).to_have_text("The codes")
    tour.shot("07-generate-codes-progress", docs=True)
    expect(page.locator("#job-back a")).to_have_attribute(
        "href", f"/admin/promotions/promotion/{promotion_id}/change/"
    )
    expect(page.locator("#job-links a:text('Export the codes as CSV')")).to_have_attribute(
        "href", f"/admin/promotions/promotion/{promotion_id}/codes.csv"
    )

    # The finished page leads to the codes, listed under Promo codes, filtered by the promotion.
    page.click("#job-links a:text('The codes')")

    expect(page.locator("#changelist .paginator")).to_contain_text("1000 promo codes")
    first = page.locator("#result_list tbody tr").first
    expect(first.locator(".field-promotion")).to_have_text(PROMOTION)
    expect(first.locator(".field-use_count")).to_have_text("0")
    code = first.locator(".field-code").inner_text().strip()
    assert re.fullmatch(r"PW-[A-Z0-9]{6}", code), code
    tour.shot("08-promotion-codes")

    # Try an order with one of the codes: the verdicts name the promotion, which applies.
    tour.goto("/admin/promotions/promotion/")
    page.click("a:text('Try an order')")
    expect(page.locator("#content h1")).to_have_text("Try an order")
    pick(page, "id_client", "Ann Example")
    page.fill("#id_codes", code)
    pick(page, "id_lines-0-tariff", "VPS S")
    page.fill("[name=lines-0-period]", "1")
    page.click("input[value=Quote]")
    verdicts = page.locator("#quote-lines .verdicts")
    expect(verdicts.locator("li.applied")).to_have_text(f"{PROMOTION}: applied: 10% off (1.00 USD)")
    expect(page.locator("#quote-lines tbody tr").first).to_contain_text("VPS S")
    expect(page.locator("#quote-codes")).to_contain_text(f"{code}: code {code} is valid")
    expect(page.locator("#quote-total")).to_have_text("Total 9.00 USD, of which discount 1.00 USD")
    expect(page.locator("#quote-moment")).to_contain_text(" UTC.")
    tour.shot("09-try-order")

    # Archive it from the changelist.
    changelist_action(tour, promotion_id, "archive")
    expect(page.locator(".messagelist")).to_contain_text("1 promotion(s) archived.")
    row = page.locator("#result_list tbody tr", has_text=PROMOTION)
    expect(row.locator(".field-status_display")).to_have_text("archived")
    expect(row.locator(".field-code_count")).to_have_text("1000")
    tour.shot("10-promotion-archived")

    # Its page tells the story (created, codes generated, archived: by whom, from where, through
    # which function) and exports the codes. The page lists every code as an inline form row
    # (see test_a_promotion_with_many_codes_saves_from_its_page), which makes it slow with 1,000
    # codes (~10 s to render, ~20 s of admin JavaScript): it is opened once, given time, and shot
    # in its first screen rather than all of its ~100,000 pixels.
    with page.expect_navigation(timeout=HEAVY_PAGE_MS):
        row.locator("th a").click()
    expect(page).to_have_url(re.compile(rf"/admin/promotions/promotion/{promotion_id}/change/$"))
    expect(page.locator(".field-archived img")).to_have_attribute("alt", "True")
    expect(glance).to_contain_text("archived")
    expect(glance).to_contain_text("1000 codes, 0 uses (the 20 most used below)")
    history = page.locator(".field-history_table table tr")
    for desc, function in [
        (f'Promotion "{PROMOTION}" has been created', "admin:promotion.add"),
        (
            '1000 promo codes have been generated from template "PW-??????"',
            "admin:promotion.promocode.generate",
        ),
        ("Promotion has been archived", "admin:promotion.archive"),
    ]:
        expect(history.filter(has_text=desc).locator("td")).to_have_text(
            [WHEN, desc, USERNAME, LOCAL_IP, function]
        )
    page.locator(".field-history_table").scroll_into_view_if_needed()
    tour.shot("11-promotion-history", full_page=False)

    # Export the codes as CSV from the panel's link: a header and the 1,000 codes.
    with page.expect_download() as download_info:
        page.click(".field-at_a_glance a:text('export as CSV')")
    download = download_info.value
    assert download.suggested_filename == f"promotion-{promotion_id}-codes.csv"
    saved = tmp_path / download.suggested_filename
    download.save_as(saved)
    text = saved.read_text(encoding="utf-8")
    assert len(text.splitlines()) == 1001
    rows = list(csv.DictReader(io.StringIO(text)))
    assert text.splitlines()[0] == (
        "code,uselimit,account_uselimit,active_time_type,fromdate,todate,expiretype,"
        "periodtype,periodlength,use_count"
    )
    assert len({r["code"] for r in rows}) == 1000
    assert all(re.fullmatch(r"PW-[A-Z0-9]{6}", r["code"]) for r in rows)
    assert code in {r["code"] for r in rows}
    assert {r["use_count"] for r in rows} == {"0"}
    tour.assert_clean()


def test_operator_sets_up_a_referral_program_with_a_rule_and_its_condition(tour, substrate):
    page = tour.page
    log_in(tour)

    # A program with one rule, added inline on the program page.
    page.click("#content-main a[href='/admin/referrals/referralprogram/add/']")
    expect(page.locator("#content h1")).to_have_text("Add referral program")
    page.select_option("#id_provider", label="Acme Hosting")
    page.fill("#id_name", "Friends bring friends")
    page.fill("#id_promocode", "FRIEND@ID@")
    page.click("#rules-group .add-row a")
    page.fill("[name=rules-0-name]", "Ten percent")
    page.select_option("[name=rules-0-reward_type]", "percent")
    page.fill("[name=rules-0-amount]", "10")
    page.select_option("[name=rules-0-schedule]", "month")
    expect(page.locator("[name=rules-0-active]")).to_be_checked()
    tour.shot("12-referral-program-add")
    page.click("input[name=_continue]")
    expect(page.locator(".messagelist")).to_contain_text(
        "The referral program “Friends bring friends” was added successfully"
    )
    expect(page.locator("[name=rules-0-name]")).to_have_value("Ten percent")
    expect(page.locator("[name=rules-0-amount]")).to_have_value(re.compile(r"^10(\.0+)?$"))
    expect(page.locator(".field-partners_overview")).to_contain_text("No partners yet.")
    tour.shot("13-referral-program-saved")

    # Open the rule from its row and add a condition inline on the rule page.
    page.click("#rules-group a.inlinechangelink")
    expect(page.locator("#content h1")).to_have_text("Change rule")
    expect(page.locator("#id_name")).to_have_value("Ten percent")
    page.click("#conditions-group .add-row a")
    page.select_option("[name=conditions-0-ctype]", label="referral's sales volume")
    page.select_option("[name=conditions-0-comparison]", "ge")
    page.fill("[name=conditions-0-amount_ctype_1]", "50")
    page.click("input[name=_continue]")
    expect(page.locator(".messagelist")).to_contain_text(
        "The rule “Ten percent” was changed successfully"
    )
    condition = page.locator("#conditions-group tr.has_original")
    expect(condition).to_have_count(1)
    expect(condition.locator("td.original p")).to_contain_text("referral's sales volume >= 50")
    expect(page.locator("[name=conditions-0-ctype]")).to_have_value("1")
    expect(page.locator("[name=conditions-0-amount_ctype_1]")).to_have_value(
        re.compile(r"^50(\.0+)?$")
    )
    tour.shot("14-rule-condition-saved")


def test_a_promotion_with_many_codes_saves_from_its_page(tour, substrate):
    promotion = PromotionFactory(name="Big batch", provider=substrate["provider"])
    PromoCode.objects.bulk_create(
        PromoCode(promotion=promotion, code=f"BIG-{i:04d}") for i in range(100)
    )
    page = tour.page
    log_in(tour)
    tour.goto(f"/admin/promotions/promotion/{promotion.pk}/change/")
    expect(page.locator(".field-at_a_glance")).to_contain_text("100 codes, 0 uses")
    page.fill("#id_name", "Big batch, renamed")
    with page.expect_navigation() as saved:
        page.click("input[name=_continue]")
    assert saved.value.ok, f"saving the promotion page answered HTTP {saved.value.status}"
    expect(page.locator(".messagelist")).to_contain_text(
        "The promotion “Big batch, renamed” was changed successfully"
    )
    tour.assert_clean()
