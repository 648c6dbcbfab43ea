# One more recipe at 1,000 CPU-s (or argv[4]) beside the r3gan study's bracket, trained and scored with the
# search's own functions: trial 2's recipe (configs/art_cpu.py's settings at batch 32) with the
# changes given as JSON in argv[2], in /work/art30/r3gan/extra/<argv[1]>, on core argv[3].
import json, pathlib, sys, types
sys.path.insert(0, "/work/search-wt/benchmarks")
# (The class-loss runs imported the same script from a worktree at 49be8c3, which has
# train.class_loss: /work/cl-wt/benchmarks in place of the path above.)
import recipe_search as rs
name, changes, core = sys.argv[1], json.loads(sys.argv[2]), int(sys.argv[3])
budget = float(sys.argv[4]) if len(sys.argv) > 4 else 1000.0
args = types.SimpleNamespace(out="/work/art30/r3gan", source="folder:/work/art30/drawn",
                             resolution=32, num=500, results="/work/art30/r3gan/results")
params = dict(json.loads(pathlib.Path("/work/art30/r3gan/trials/002/params.json").read_text()), **changes)
run_dir = pathlib.Path("/work/art30/r3gan/extra") / name
run_dir.mkdir(parents=True, exist_ok=True)
r = rs.train_and_score(args, run_dir, params, budget, core, f"extra_{name}_{budget:.0f}s.png", {"trial": name})
print(json.dumps({k: r[k] for k in ("step", "cpu_seconds", "c2st_classifier_accuracy", "gan_test_accuracy", "fd_classifier", "score")}))
