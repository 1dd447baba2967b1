"""Codes out and in as CSV: an export imports as it is; a file with any bad row saves nothing."""

import csv
import io

import pytest
from django.contrib.auth.models import Permission
from django.core.files.uploadedfile import SimpleUploadedFile

from common.models import History
from promotions.models import PromoCode
from tests.factories import PromoCodeFactory, PromotionFactory, UserFactory

pytestmark = pytest.mark.django_db


def upload(staff, promotion, text: str):
    return staff.post(
        f"/admin/promotions/promotion/{promotion.pk}/import-codes/",
        {"file": SimpleUploadedFile("codes.csv", text.encode(), content_type="text/csv")},
    )


def test_an_export_imports_into_another_promotion_as_it_is(staff):
    # given a promotion with codes of different settings
    source = PromotionFactory()
    PromoCodeFactory(promotion=source, code="AAA1", uselimit=5, account_uselimit=1, use_count=2)
    PromoCodeFactory(
        promotion=source,
        code="BBB2",
        active_time_type="period",
        fromdate="2026-01-01",
        todate="2026-02-01",
        expiretype="period",
        periodtype="month",
        periodlength=3,
    )
    # when its codes are exported
    exported = staff.get(f"/admin/promotions/promotion/{source.pk}/codes.csv")
    rows = list(csv.DictReader(io.StringIO(exported.content.decode())))
    assert [(r["code"], r["uselimit"], r["use_count"]) for r in rows] == [
        ("AAA1", "5", "2"),
        ("BBB2", "", "0"),
    ]
    # and the file, renamed, is imported into another promotion
    target = PromotionFactory()
    renamed = exported.content.decode().replace("AAA1", "CCC3").replace("BBB2", "DDD4")
    response = upload(staff, target, renamed)
    # then the codes exist there with the same settings and no uses, with a history line
    assert response.status_code == 302
    copied = {c.code: c for c in target.promocodes.all()}
    assert set(copied) == {"CCC3", "DDD4"}
    assert (copied["CCC3"].uselimit, copied["CCC3"].account_uselimit) == (5, 1)
    assert copied["CCC3"].use_count == 0
    assert (copied["DDD4"].periodtype, copied["DDD4"].periodlength) == ("month", 3)
    assert str(copied["DDD4"].todate) == "2026-02-01"
    assert History.objects.filter(desc="2 promo codes have been imported").exists()


def test_every_bad_row_is_reported_and_nothing_is_saved(staff):
    # given a code that exists and a file with one good row and four bad ones
    PromoCodeFactory(code="TAKEN")
    promotion = PromotionFactory()
    text = (
        "code,uselimit,todate,active_time_type\n"
        "GOOD1,3,,\n"
        "BAD-DATE,,2026-13-45,\n"
        "good1,,,\n"
        "TAKEN,,,\n"
        "PERIOD-NO-DATES,,,period\n"
    )
    # when it is imported
    response = upload(staff, promotion, text)
    # then each bad row is named by its line and nothing was saved
    page = response.content.decode()
    assert response.status_code == 200
    for expected in (
        "line 3: todate",
        "line 4: code: GOOD1 repeats line 2",
        "line 5: code: TAKEN exists already",
        "line 6:",
    ):
        assert expected in page
    assert "line 2" not in page.replace("repeats line 2", "")
    assert not promotion.promocodes.exists()


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("name\nX\n", "no code column"),
        ("code\n", "holds no codes"),
        ("code\nWHY-???\n", "cannot be imported"),
    ],
)
def test_files_without_codes_are_refused(staff, text, message):
    promotion = PromotionFactory()
    response = upload(staff, promotion, text)
    assert message in response.content.decode() and not PromoCode.objects.exists()


def test_a_viewer_of_codes_may_export_and_only_a_creator_of_codes_may_import(client):
    viewer = UserFactory(is_staff=True)
    for codename in ("view_promotion", "view_promocode", "change_promotion"):
        viewer.user_permissions.add(Permission.objects.get(codename=codename))
    client.force_login(viewer)
    promotion = PromotionFactory()
    assert client.get(f"/admin/promotions/promotion/{promotion.pk}/codes.csv").status_code == 200
    # changing the promotion is not enough to add codes to it
    assert upload(client, promotion, "code\nX1\n").status_code == 403
    assert not PromoCode.objects.exists()
    viewer.user_permissions.add(Permission.objects.get(codename="add_promocode"))
    viewer = type(viewer).objects.get(pk=viewer.pk)
    client.force_login(viewer)
    assert upload(client, promotion, "code\nX1\n").status_code == 302
    assert PromoCode.objects.get().code == "X1"


@pytest.mark.parametrize(
    ("text", "message"),
    [
        pytest.param(
            "code,uselimit\nGOOD1,1\nBAD\x002,1\n",
            "line 3: the file holds a NUL byte, which no CSV text holds; nothing was imported.",
            id="NUL byte",
        ),
        pytest.param(
            "code,uselimit\nGOOD1,1\n" + "X" * (129 * 1024) + ",1\n",
            "line 3: a field is longer than 128 KB; nothing was imported.",
            id="field over 128 KB",
        ),
    ],
)
def test_a_file_csv_cannot_read_is_answered_with_the_line_and_saves_nothing(staff, text, message):
    # given a file the csv module cannot read at one line
    promotion = PromotionFactory()
    # when it is imported
    response = upload(staff, promotion, text)
    # then the page names the line and what is wrong, and no code is saved
    assert response.status_code == 200
    assert message in response.content.decode()
    assert not PromoCode.objects.exists()
