"""The gallery in a real browser: headless Chromium (the system's, e.g. Debian's `chromium`
package) driven by Playwright. Two raters, keyboard and mouse, blind trials, a reload; then the
SQLite rows and the report. Screenshots of each page go to the test's tmp folder."""
import os
import sqlite3

import pytest
from gallery_support import copy_run, serving, trained_run

from jaxgan.gallery import report, store as store_lib
from jaxgan.gallery.server import Gallery

CHROMIUM_PATHS = ("/usr/bin/chromium", "/usr/bin/chromium-browser", "/usr/bin/google-chrome")
NUM_TRIALS = 10


def _chromium():
    path = os.environ.get("JAXGAN_CHROMIUM") or next(
        (p for p in CHROMIUM_PATHS if os.path.exists(p)), None)
    return path


sync_api = pytest.importorskip(
    "playwright.sync_api", reason="Playwright is not installed (pip install playwright)")
if _chromium() is None:
    pytest.skip("no Chromium installed (apt-get install chromium, or set JAXGAN_CHROMIUM)",
                allow_module_level=True)


@pytest.fixture(scope="module")
def gallery(tmp_path_factory):
    _, sampler = trained_run(tmp_path_factory)
    return Gallery(sampler, copy_run(tmp_path_factory, "gallery-browser"), seed=0, num=20,
                   num_trials=NUM_TRIALS)


@pytest.fixture(scope="module")
def browser():
    with sync_api.sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=_chromium(), headless=True,
                                             args=["--no-sandbox", "--disable-gpu"])
        yield browser
        browser.close()


def open_as(browser, base, rater):
    """A page in its own browser profile, with the rater's name typed into the box."""
    context = browser.new_context(viewport={"width": 1280, "height": 900})
    page = context.new_page()
    errors = []
    page.on("pageerror", lambda error: errors.append(str(error)))
    page.goto(base + "/")
    page.wait_for_selector(".card")
    page.fill("#rater", rater)
    page.press("#rater", "Enter")  # blurs the box: saved to localStorage
    page.wait_for_function("() => localStorage.getItem('jaxgan.gallery.rater') !== null")
    return page, errors


def wait_rated(page, index, value):
    page.wait_for_selector(f'.card[data-index="{index}"] .rate.on[data-value="{value}"]')


# Every answer to /api/state arrives 1.5 s late: the page must not let it undo a rating typed meanwhile.
SLOW_STATE = """
const realFetch = window.fetch;
window.fetch = async (url, options) => {
  const response = await realFetch(url, options);
  if (String(url).startsWith("/api/state")) await new Promise((done) => setTimeout(done, 1500));
  return response;
};
"""


def test_rating_typed_while_the_raters_state_loads_is_kept(browser, tmp_path_factory):
    _, sampler = trained_run(tmp_path_factory)
    gallery = Gallery(sampler, copy_run(tmp_path_factory, "gallery-slow-state"), seed=0, num=20)
    with serving(gallery) as base:
        context = browser.new_context(viewport={"width": 1280, "height": 900})
        page = context.new_page()
        page.add_init_script(SLOW_STATE)
        page.goto(base + "/")
        page.wait_for_selector(".card")
        page.fill("#rater", "carol")
        page.press("#rater", "Enter")  # starts loading carol's (empty) state: 1.5 s
        page.click('.card[data-index="4"] .rate[data-value="2"]')
        wait_rated(page, 4, 2)
        page.wait_for_timeout(2500)  # the late answer has arrived
        wait_rated(page, 4, 2)
        assert page.inner_text("#progress") == "Rated 1 of 20."
        context.close()
    assert [(r["rater"], r["kind"], r["value"]) for r in gallery.store.rows()] == [("carol", "rating", 2)]


def test_two_raters_trials_reload_report(gallery, browser, tmp_path):
    shots = tmp_path / "screenshots"
    shots.mkdir()
    with serving(gallery) as base:
        ann, ann_errors = open_as(browser, base, "ann")
        bob, bob_errors = open_as(browser, base, "bob")
        ann_ratings = {}
        for i in range(10):
            value = 1 + (i * 2) % 5
            if i < 6:  # keyboard: the selected card is rated, then the next one is selected
                ann.keyboard.press(str(value))
            else:      # mouse
                ann.click(f'.card[data-index="{i}"] .rate[data-value="{value}"]')
            wait_rated(ann, i, value)
            ann_ratings[gallery.images[i].id] = value
            # the second rater, in another browser profile, between ann's ratings
            bob.click(f'.card[data-index="{19 - i}"] .rate[data-value="{5 - i % 5}"]')
            wait_rated(bob, 19 - i, 5 - i % 5)
        ann.click('.card[data-index="2"] img')
        ann.keyboard.press("f")
        ann.wait_for_selector('.card[data-index="2"] .favourite.on')
        ann.keyboard.press("ArrowRight")
        ann.keyboard.press("f")
        ann.wait_for_selector('.card[data-index="3"] .favourite.on')
        ann.keyboard.press("c")
        ann.wait_for_selector('.card[data-index="3"] .copied.on')
        ann.click("#redraw")  # card 3 is selected
        ann.wait_for_selector("#made-image[src^='/made/']")
        assert "redraw-step2-seed3-1-psi0.7.png" in ann.inner_text("#made-path")
        ann.click("#interpolate")  # between the two favourites
        ann.wait_for_selector("#made-path:has-text('walk-step2-seed2-seed3')")
        top = ann.eval_on_selector(".card.selected", "e => e.getBoundingClientRect().top")
        ann.keyboard.press("ArrowDown")
        below = ann.eval_on_selector(".card.selected", "e => e.getBoundingClientRect().top")
        assert below > top
        ann.keyboard.press("ArrowUp")
        assert ann.get_attribute(".card.selected", "data-index") == "3"
        ann.screenshot(path=shots / "gallery.png", full_page=True)

        # blind trials: keyboard and mouse, then the score
        ann.goto(base + "/trials")
        said = {}
        for k in range(NUM_TRIALS):
            ann.wait_for_selector(f"#trial-progress:has-text('Trial {k + 1} of {NUM_TRIALS}')")
            ann.wait_for_function("() => document.getElementById('trial-image').complete")
            if k == 3:
                ann.screenshot(path=shots / "trial.png")
            answer = "real" if k % 3 == 0 else "generated"
            if k % 2:
                ann.keyboard.press(answer[0])
            else:
                ann.click(f"#say-{answer}")
            said[k] = answer
        ann.wait_for_selector("#score:not([hidden])")
        score_text = ann.inner_text("#score-text")
        ann.screenshot(path=shots / "score.png")
        plan = gallery.plan("ann")
        correct = sum((said[t.position] == "real") == (t.source == "real") for t in plan)
        assert score_text.startswith(f"{correct} of {NUM_TRIALS} right")

        # a reload keeps every rating (from the server, for the name kept in the browser)
        ann.goto(base + "/")
        for i in range(10):
            wait_rated(ann, i, ann_ratings[gallery.images[i].id])
        assert ann.inner_text("#progress") == "Rated 10 of 20."
        ann.screenshot(path=shots / "reloaded.png", full_page=True)
        bob.wait_for_load_state("networkidle")
        bob.screenshot(path=shots / "second_rater.png", full_page=True)
        assert ann_errors == [] and bob_errors == []

    # what the database holds
    with sqlite3.connect(store_lib.db_path(gallery.workdir)) as connection:
        rows = connection.execute(
            "SELECT rater, kind, COUNT(*) FROM judgements GROUP BY rater, kind ORDER BY 1, 2").fetchall()
        mode = connection.execute("PRAGMA journal_mode").fetchone()[0]
    assert mode == "wal"
    assert rows == [("ann", "copied", 1), ("ann", "favourite", 2), ("ann", "rating", 10),
                    ("ann", "trial", 10), ("bob", "rating", 10)]
    stored = {r["image_id"]: r["value"] for r in gallery.store.rows("WHERE rater = 'ann' AND kind = 'rating'")}
    assert stored == ann_ratings

    # and what the report makes of it
    summary = report.summarise(gallery.store.rows())
    values = list(ann_ratings.values()) + [5 - i % 5 for i in range(10)]
    assert summary.raters == 2 and summary.ratings[report.ALL].n == 20
    assert summary.ratings[report.ALL].mean == pytest.approx(sum(values) / 20)
    trials = [(t.source, said[t.position]) for t in plan]
    fooled = sum(s == "generated" and a == "real" for s, a in trials)
    assert (summary.fooled_generated[report.ALL].k, summary.fooled_generated[report.ALL].n) == (fooled, 5)
    assert summary.hype_error.k == NUM_TRIALS - correct
    assert [row["image_id"] for row, _ in summary.copied] == [gallery.images[3].id]
    for name in ("gallery", "trial", "score", "reloaded", "second_rater"):
        assert (shots / f"{name}.png").stat().st_size > 5000
