"""Make docs/gallery.png, the README's screenshot of the gallery, from a trained run.

    python train.py --workdir runs/digits            # about 5.5 minutes on a 2-core CPU
    python docs/gallery_screenshot.py --workdir runs/digits

Needs Playwright (`pip install playwright`) and a Chromium (`apt-get install chromium`).
The workdir's checkpoints are copied to a temporary folder, so its ratings.sqlite is untouched.
"""
import argparse
import os
import shutil
import tempfile
import threading

from playwright.sync_api import sync_playwright

import jaxgan
from jaxgan.gallery import server as server_lib

parser = argparse.ArgumentParser()
parser.add_argument("--workdir", required=True)
parser.add_argument("--out", default=os.path.join(os.path.dirname(__file__), "gallery.png"))
parser.add_argument("--chromium", default="/usr/bin/chromium")
args = parser.parse_args()

with tempfile.TemporaryDirectory() as directory:
    shutil.copytree(os.path.join(args.workdir, "checkpoints"), os.path.join(directory, "checkpoints"))
    gallery = server_lib.Gallery(jaxgan.load_sampler(directory), directory, num=40)
    server = server_lib.make_server(gallery, "127.0.0.1", 0)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    base = f"http://127.0.0.1:{server.server_address[1]}"
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=args.chromium, headless=True)
        page = browser.new_page(viewport={"width": 1120, "height": 960})
        page.goto(base + "/")
        page.wait_for_selector(".card")
        page.fill("#rater", "ada")
        page.press("#rater", "Enter")
        for i, value in enumerate([5, 4, 4, 3, 5, 2, 4, 5, 3, 4, 5, 4]):
            page.keyboard.press(str(value))
            page.wait_for_selector(f'.card[data-index="{i}"].rated')
        for i, key in ((1, "f"), (4, "f"), (9, "c")):
            page.click(f'.card[data-index="{i}"] img')
            page.keyboard.press(key)
            page.wait_for_selector(f'.card[data-index="{i}"] .{"favourite" if key == "f" else "copied"}.on')
        page.click('.card[data-index="4"] img')
        page.click("#redraw")
        page.wait_for_selector("#made-image[src^='/made/']")
        page.wait_for_function("() => document.getElementById('made-image').complete")
        page.click('.card[data-index="6"] img')
        page.evaluate("window.scrollTo(0, 0)")
        page.screenshot(path=args.out)
        browser.close()
    server.shutdown()
print(f"Wrote {args.out}")
