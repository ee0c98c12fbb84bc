"""The Dashboard's offline pages (``to_html`` and the CLI report) from file:// with no network.

Segment click -> user list -> user -> inspector, and a finding's "show" link, all without a
kernel over the precomputed users. Every non-file request is aborted and recorded.
"""

from __future__ import annotations

import pytest
import torch
from playwright.sync_api import expect

from recwidgets.data.split import leave_last_out
from recwidgets.datasets import load
from recwidgets.diagnose.finding import Finding
from recwidgets.evaluation import evaluate
from recwidgets.models.baselines import Popularity
from recwidgets.models.sasrec import SASRec
from recwidgets.widgets.dashboard import Dashboard

from .test_report_offline import open_offline

pytestmark = pytest.mark.browser

BOARD = '[data-testid="dashboard"]'


@pytest.fixture(scope="module")
def dashboard_page(ml100k_dir, tmp_path_factory):
    """Write a Dashboard (SASRec 1 epoch, Popularity, 20 resamples, 10 users) with ``to_html``."""
    torch.manual_seed(0)
    split = leave_last_out(load(str(ml100k_dir)))
    sasrec = SASRec(epochs=1, hidden=32).fit(split)
    results = {
        "sasrec": evaluate(sasrec, split, k=(5, 10), n_bootstrap=20),
        "popularity": evaluate(Popularity().fit(split), split, k=(5, 10), n_bootstrap=20),
    }
    finding = Finding(
        id="tail-gap",
        severity="warning",
        title="Tail targets <b>score</b> low",
        evidence={"model": "sasrec"},
        fix="Compare popularity buckets.",
        view={"widget": "MetricPanel", "segment_by": "target_popularity"},
    )
    board = Dashboard(results, split=split, model=sasrec, findings=[finding], max_users=10)
    path = tmp_path_factory.mktemp("dashboard") / "dashboard.html"
    board.to_html(path)
    expected = {
        "weak": board.weakest_segment("activity"),
        "precomputed": board.precomputed_users(),
        "titles": {user: board.user_payloads[str(user)]["titles"] for user in board.precomputed_users()},
        "top1": {user: board.user_payloads[str(user)]["recommendations"][0]["title"] for user in board.precomputed_users()},
    }
    return path, expected


def check_linking(page, weak: str, precomputed: list[int], titles: dict, top1: dict | None) -> None:
    """Click the weakest segment, then two of its precomputed users, and check the inspector."""
    root = page.locator(BOARD)
    expect(root.locator('[data-testid="dashboard-segment-by"]')).to_have_value("activity")
    row = root.locator(f'[data-testid="dashboard-segment-row"][data-segment="{weak}"]')
    row.click()
    expect(row).to_have_attribute("aria-selected", "true")

    buttons = root.locator('[data-testid="dashboard-user"]')
    expect(buttons.first).to_be_visible()
    listed = [int(value) for value in buttons.evaluate_all("bs => bs.map(b => b.dataset.user)")]
    ready = [user for user in listed if user in precomputed]
    assert ready, "no precomputed user listed in the weakest segment"
    # Without a kernel, users without a payload cannot be chosen.
    for index in range(buttons.count()):
        button = buttons.nth(index)
        if button.get_attribute("data-precomputed") == "false":
            expect(button).to_be_disabled()
            break

    for user in ready[:2]:
        root.locator(f'[data-testid="dashboard-user"][data-user="{user}"]').click()
        title = root.locator('[data-testid="dashboard-inspector-title"]')
        expect(title).to_have_attribute("data-user", str(user))
        history = root.locator('[data-testid="dashboard-history-row"]')
        expect(history).to_have_count(len(titles[user]))
        # Most recent item first.
        expect(history.first.locator("td").nth(1)).to_have_text(titles[user][-1])
        assert root.locator('[data-testid="attention-bar"]').count() == history.count()
        expect(root.locator('[data-testid="dashboard-rec"]')).to_have_count(10)
        if top1 is not None:
            expect(root.locator('[data-testid="dashboard-rec"]').first).to_contain_text(top1[user])


def check_finding_link(page) -> None:
    root = page.locator(BOARD)
    show = root.locator('[data-testid="dashboard-finding-show"]').first
    show.click()
    expect(root.locator('[data-testid="dashboard-segment-by"]')).to_have_value("target_popularity")
    expect(root.locator('[data-testid="dashboard-segment-row"][data-segment="tail"]')).to_have_count(1)


def test_dashboard_export_links_offline(browser, dashboard_page):
    path, expected = dashboard_page
    context, page, requests, dialogs, errors = open_offline(browser, path)
    try:
        page.wait_for_selector('[data-testid="dashboard-metric-cell"]')
        root = page.locator(BOARD)
        assert set(root.locator('[data-testid="dashboard-metric-cell"]').evaluate_all("cs => cs.map(c => c.dataset.model)")) == {
            "sasrec",
            "popularity",
        }
        check_linking(page, expected["weak"], expected["precomputed"], expected["titles"], expected["top1"])
        assert root.locator('[data-testid="shap-bar"]').count() > 0
        # The k selector trims the recommendation list without a kernel.
        root.locator('[data-testid="dashboard-k"]').select_option("5")
        expect(root.locator('[data-testid="dashboard-rec"]')).to_have_count(5)
        check_finding_link(page)
        # Finding text is text, never markup.
        expect(root.locator('[data-testid="dashboard-finding"]').first).to_contain_text("Tail targets <b>score</b> low")
        assert root.locator("b").count() == 0
        assert root.locator('[data-testid="rw-error"]').is_hidden()
    finally:
        context.close()
    assert requests == []
    assert dialogs == []
    assert errors == []


def test_report_dashboard_links_offline(browser, demo_report):
    html = (demo_report / "report.html").read_text(encoding="utf-8")
    assert "user_payloads" in html
    context, page, requests, dialogs, errors = open_offline(browser, demo_report / "report.html")
    try:
        page.wait_for_selector('[data-testid="dashboard-metric-cell"]')
        root = page.locator(BOARD)
        root.locator('[data-testid="dashboard-segment-row"]').first.wait_for()
        # The report does not say which segment is weakest, so try each activity segment until one
        # lists a user whose explanation is precomputed.
        rows = root.locator('[data-testid="dashboard-segment-row"]')
        labels = rows.evaluate_all("rs => rs.map(r => r.dataset.segment)")
        found = False
        for label in labels:
            root.locator(f'[data-testid="dashboard-segment-row"][data-segment="{label}"]').click()
            ready = root.locator('[data-testid="dashboard-user"][data-precomputed="true"]')
            if ready.count():
                found = True
                user = ready.first.get_attribute("data-user")
                ready.first.click()
                expect(root.locator('[data-testid="dashboard-inspector-title"]')).to_have_attribute("data-user", user)
                assert root.locator('[data-testid="dashboard-history-row"]').count() > 0
                assert root.locator('[data-testid="attention-bar"]').count() > 0
                assert root.locator('[data-testid="dashboard-rec"]').count() > 0
                break
        assert found, f"no activity segment of {labels} lists a precomputed user"
        show = root.locator('[data-testid="dashboard-finding-show"]')
        assert show.count() > 0
        assert root.locator('[data-testid="rw-error"]').is_hidden()
    finally:
        context.close()
    assert requests == []
    assert dialogs == []
    assert errors == []
