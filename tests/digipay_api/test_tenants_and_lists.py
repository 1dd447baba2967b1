"""A company sees only its own programs, with every verb; the list's filters, sorting and paging."""

import datetime

import pytest
import time_machine

from digipay_api.models import DigiPayProgram
from referrals.models import ReferralProgram
from tests.digipay_api.conftest import assert_envelope, body

pytestmark = pytest.mark.django_db


# Tenant isolation -------------------------------------------------------------------------------


@pytest.fixture
def theirs(other_digipay) -> str:
    """A program of the other company."""
    return other_digipay.created_id(referral_program_title="Theirs")


def test_a_company_lists_only_its_own_programs(digipay, other_digipay, theirs):
    # given a program of each company
    ours = digipay.created_id(referral_program_title="Ours")
    # when each lists
    mine = digipay.list().json()["data"]
    others = other_digipay.list().json()["data"]
    # then each sees its own only, and the counts agree
    assert [p["referral_program_id"] for p in mine["referral_programs"]] == [ours]
    assert [p["referral_program_id"] for p in others["referral_programs"]] == [theirs]
    assert mine["total_count"] == others["total_count"] == 1
    # and a search for the other's title finds nothing
    assert digipay.list(search_keyword="Theirs").json()["data"]["total_count"] == 0


@pytest.mark.parametrize("verb", ["read", "update", "delete"])
def test_another_companys_program_is_exactly_as_missing_as_an_unknown_one(digipay, theirs, verb):
    # given the other company's program and an id nobody has
    unknown = "0" * 32
    args = ({"referral_program_title": "Hijacked", "referral_condition": ["reward:100%"]},)
    args = args if verb == "update" else ()
    # when this company reads, changes or deletes each
    foreign = getattr(digipay, verb)(theirs, *args)
    missing = getattr(digipay, verb)(unknown, *args)
    # then both answer the same 404, told apart only by the id they name
    assert_envelope(foreign, 404, [4], "NOT_FOUND")
    assert_envelope(missing, 404, [4], "NOT_FOUND")
    assert foreign.content.replace(theirs.encode(), unknown.encode()) == missing.content
    # and the other company's program is untouched
    program = DigiPayProgram.objects.get(public_id=theirs).program
    assert program.name == "Theirs" and not program.rules.exists()


def test_titles_are_unique_per_company_not_across_companies(digipay, theirs):
    # given the other company's "Theirs", this company may use the title too
    assert digipay.created_id(referral_program_title="Theirs")
    assert ReferralProgram.objects.filter(name="Theirs").count() == 2


def test_a_company_cannot_use_another_companys_currency(digipay, other_digipay):
    other_currency = other_digipay.company().currencies.get().public_id
    response = digipay.call("post", data=body(currency_id=other_currency))
    data = assert_envelope(response, 400, [1], "BAD_REQUEST")
    assert list(data["errors"]) == ["currency_id"]


def test_a_program_posted_by_a_company_belongs_to_its_provider(digipay, other_digipay, company):
    mine = digipay.created_id()
    theirs = other_digipay.created_id()
    assert DigiPayProgram.objects.get(public_id=mine).program.provider == company.provider
    other_provider = DigiPayProgram.objects.get(public_id=theirs).program.provider
    assert other_provider == other_digipay.company().provider != company.provider


# List filters, sorting, paging ------------------------------------------------------------------


@pytest.fixture
def programs(digipay) -> dict[str, str]:
    """Five programs made on different days: title -> id.

    Alpha (2026-01-10, no expiry), Beta (2026-01-20, expires 2026-02-01), Gamma (2026-02-05,
    inactive), Delta (2026-02-15, expires 2026-12-31, message "VIP only"), Epsilon (2026-03-01,
    no expiry). Today is 2026-03-10.
    """
    made = {}
    plan = [
        ("2026-01-10", "Alpha", {}),
        ("2026-01-20", "Beta", {"expiry_date": 1769904000}),  # 2026-02-01
        ("2026-02-05", "Gamma", {"status": 2}),
        ("2026-02-15", "Delta", {"expiry_date": 1798675200, "message": "VIP only"}),  # 2026-12-31
        ("2026-03-01", "Epsilon", {}),
    ]
    for day, title, changes in plan:
        with time_machine.travel(datetime.datetime.fromisoformat(f"{day}T10:00:00+00:00")):
            made[title] = digipay.created_id(
                referral_program_title=title, **{"expiry_date": 0, **changes}
            )
    return made


def titles(response) -> list[str]:
    assert response.status_code == 200, response.content
    return [p["referral_program_title"] for p in response.json()["data"]["referral_programs"]]


@pytest.mark.parametrize(
    ("query", "expected"),
    [
        ({}, ["Epsilon", "Delta", "Gamma", "Beta", "Alpha"]),
        ({"status": 1}, ["Epsilon", "Delta", "Alpha"]),
        ({"status": 2}, ["Gamma"]),
        ({"status": 3}, ["Beta"]),
        ({"is_active": 1}, ["Epsilon", "Delta", "Alpha"]),
        ({"is_active": 0}, ["Gamma", "Beta"]),
        ({"search_keyword": "ta"}, ["Delta", "Beta"]),
        ({"search_keyword": "vip"}, ["Delta"]),
        ({"search_keyword": ""}, ["Epsilon", "Delta", "Gamma", "Beta", "Alpha"]),
        ({"start_date": "2026-02-01"}, ["Epsilon", "Delta", "Gamma"]),
        ({"end_date": "2026-01-31"}, ["Beta", "Alpha"]),
        ({"start_date": "2026-01-15", "end_date": "2026-02-15"}, ["Delta", "Gamma", "Beta"]),
        ({"start_date": 1770249600}, ["Epsilon", "Delta", "Gamma"]),  # 2026-02-05 in seconds
        ({"sorting": "created_at"}, ["Alpha", "Beta", "Gamma", "Delta", "Epsilon"]),
        ({"sorting": "referral_program_title"}, ["Alpha", "Beta", "Delta", "Epsilon", "Gamma"]),
        ({"sorting": "-referral_program_title"}, ["Gamma", "Epsilon", "Delta", "Beta", "Alpha"]),
        ({"sorting": "expiry_date"}, ["Beta", "Delta", "Alpha", "Gamma", "Epsilon"]),
        ({"sorting": "-expiry_date"}, ["Epsilon", "Gamma", "Alpha", "Delta", "Beta"]),
        ({"status": 1, "sorting": "created_at", "skip": 1, "limit": 1}, ["Delta"]),
    ],
)
def test_the_list_filters_and_sorts(digipay, programs, query, expected):
    with time_machine.travel(datetime.datetime(2026, 3, 10, 12, tzinfo=datetime.UTC)):
        assert titles(digipay.list(**query)) == expected


def test_the_list_pages_with_skip_and_limit_and_counts_all(digipay, programs):
    with time_machine.travel(datetime.datetime(2026, 3, 10, 12, tzinfo=datetime.UTC)):
        pages = [digipay.list(skip=skip, limit=2).json()["data"] for skip in (0, 2, 4, 6)]
    assert [[p["referral_program_title"] for p in page["referral_programs"]] for page in pages] == [
        ["Epsilon", "Delta"],
        ["Gamma", "Beta"],
        ["Alpha"],
        [],
    ]
    assert {page["total_count"] for page in pages} == {5}
    assert [(page["skip"], page["limit"]) for page in pages] == [(0, 2), (2, 2), (4, 2), (6, 2)]


def test_the_list_rows_are_the_detail_and_the_status_says_expired(digipay, programs):
    # given the list on 2026-03-10, when Beta's last day (2026-02-01) is past
    with time_machine.travel(datetime.datetime(2026, 3, 10, 12, tzinfo=datetime.UTC)):
        rows = digipay.list(limit=100).json()["data"]["referral_programs"]
        beta = digipay.read(programs["Beta"]).json()["data"]["referral_program"]
    # then each row is what the detail shows, Beta's with status 3 and is_active 0
    by_title = {row["referral_program_title"]: row for row in rows}
    assert by_title["Beta"] == beta
    assert (beta["status"], beta["is_active"]) == (3, 0)
    assert {t: r["status"] for t, r in by_title.items()} == {
        "Alpha": 1,
        "Beta": 3,
        "Gamma": 2,
        "Delta": 1,
        "Epsilon": 1,
    }


def test_the_default_page_is_ten_newest_first(digipay):
    for n in range(12):
        digipay.created_id(referral_program_title=f"P{n:02d}")
    data = digipay.list().json()["data"]
    assert (data["total_count"], data["skip"], data["limit"]) == (12, 0, 10)
    assert [p["referral_program_title"] for p in data["referral_programs"]][:2] == ["P11", "P10"]
