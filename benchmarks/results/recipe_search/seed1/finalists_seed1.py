"""The two finalists again at 300 CPU-s with seed 1, one core each, with recipe_search.py's own
functions (run as: python benchmarks/results/recipe_search/seed1/finalists_seed1.py, 2026-12-06,
paths of that machine). Each trained in one segment (compiled once), unlike the search's 300 CPU-s
rows (150 + 150, compiled twice)."""
# The two finalists again at 300 CPU-s with seed 1, one core each (recipe_search's own functions).
import sys, json, pathlib, concurrent.futures
sys.path.insert(0, "/work/wt30/benchmarks")
import recipe_search as rs
base_overrides = rs.overrides
rs.overrides = lambda p, s, r: (base_overrides(p, s, r)[0], {**base_overrides(p, s, r)[1], "seed": 1})
finalists = {"baseline": rs.params_from_trial(rs.BASELINE),
             "diffaug": rs.params_from_trial(rs.CANDIDATES[0])}
out = pathlib.Path("/work/art30/seeds")
def one(item):
    (name, params), core = item
    d = out / name; d.mkdir(parents=True, exist_ok=True)
    ledger = rs.train_to(d, params, "folder:/work/art30/drawn", 32, 300.0, core)
    values = rs.evaluate_trial(d, pathlib.Path("/work/art30/search/shared"), 500, core,
                               out / f"{name}_seed1_300s.png")
    r = {"name": name, **ledger, **values, "score": rs.score(values)}
    (d / "result.json").write_text(json.dumps(r, default=float))
    return r
with concurrent.futures.ThreadPoolExecutor(2) as pool:
    for r in pool.map(one, zip(finalists.items(), (0, 1))):
        print(json.dumps({k: r[k] for k in ("name", "step", "cpu_seconds", "wall_seconds", "c2st_classifier_accuracy", "gan_test_accuracy", "fd_classifier", "coverage_classifier", "memorisation_classifier", "score")}), flush=True)
