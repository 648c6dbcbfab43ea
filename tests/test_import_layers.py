"""Imports in jaxgan/ point down the layers (issue 23).

The layers, bottom to top (a module may import its own layer and those below it, never above):

   0 foundation  errors, fileio, images, mesh, metric_names,  shared by everything; no JAX
                 keys, families (the config keys' kinds, the model registry)
   1 config      config.py: every key's default and validation; no JAX
   2 models      models/: the model families
   3 data        data/: the sources -> Dataset
   4 training    training/: state, step, losses, pipeline, checkpoint (and the best-checkpoint
                 policy), writers, lock
   5 sampler     sampler.py: Sampler / load_sampler, the generator rebuilt from a checkpoint
   6 evaluation  evaluation/: feature extractors, metrics, evaluation during training
   7 loop        loop.py: the training loop (it runs the evaluation)
   8 art         art/: the sampling app (sample.py's logic, export, watermark)
   9 gallery     gallery/: the rating app (uses art's export)
  10 cli         evaluate.py, watermark.py: `python -m jaxgan.evaluate | jaxgan.watermark`
  11 api         jaxgan/__init__.py: the top-level API, lazily reaching everything

Layers 0-7 are the core; nothing in it imports the apps (8-10). The order is the only rule: each
layer is a module or a package of its own, so no module needs an exception.

Every import is checked: module-level and function-local (lazy) ones, absolute and relative,
`from jaxgan import load_sampler` (resolved through jaxgan/__init__.py's lazy table), attribute
use of that table (`import jaxgan; jaxgan.train_and_evaluate`), and module names given to
importlib as string constants (the model registry, the lazy tables). Importing the package root
itself (`from jaxgan import __version__`) is allowed: Python runs jaxgan/__init__.py before any
jaxgan module anyway; in exchange, jaxgan/__init__.py eagerly imports nothing above the foundation.
"""
import ast
import pathlib

ROOT = pathlib.Path(__file__).resolve().parent.parent
PACKAGE = ROOT / "jaxgan"

# (layer, module prefixes), bottom to top. A module belongs to the layer of its longest prefix.
LAYERS = (
    ("foundation", ("jaxgan.errors", "jaxgan.fileio", "jaxgan.images", "jaxgan.mesh",
                    "jaxgan.metric_names", "jaxgan.keys", "jaxgan.families")),
    ("config", ("jaxgan.config",)),
    ("models", ("jaxgan.models",)),
    ("data", ("jaxgan.data",)),
    ("training", ("jaxgan.training",)),
    ("sampler", ("jaxgan.sampler",)),
    ("evaluation", ("jaxgan.evaluation",)),
    ("loop", ("jaxgan.loop",)),
    ("art", ("jaxgan.art",)),
    ("gallery", ("jaxgan.gallery",)),
    ("cli", ("jaxgan.evaluate", "jaxgan.watermark")),
    ("api", ("jaxgan",)),
)
CORE = ("foundation", "config", "models", "data", "training", "sampler", "evaluation", "loop")
LOOP = "jaxgan.loop"
API = "jaxgan"


def module_name(path: pathlib.Path) -> str:
    parts = list(path.relative_to(ROOT).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def all_modules() -> dict[str, pathlib.Path]:
    return {module_name(p): p for p in sorted(PACKAGE.rglob("*.py"))}


def layer_of(module: str) -> int:
    """The index in LAYERS of `module`'s longest matching prefix (None: no layer)."""
    best = None, -1
    for index, (_, prefixes) in enumerate(LAYERS):
        for prefix in prefixes:
            if (module == prefix or module.startswith(prefix + ".")) and len(prefix) > best[1]:
                best = index, len(prefix)
    return best[0]


def lazy_table() -> dict[str, str]:
    """jaxgan/__init__.py's `_LAZY`: top-level name -> the module that defines it."""
    for node in ast.parse((PACKAGE / "__init__.py").read_text()).body:
        names = [getattr(t, "id", None) for t in getattr(node, "targets", ())]
        if isinstance(node, ast.Assign) and "_LAZY" in names:
            return ast.literal_eval(node.value)
    raise AssertionError("jaxgan/__init__.py has no _LAZY table")


def imports_of(module: str, path: pathlib.Path, modules, lazy):
    """(line, imported module, how it was written, eager) for every jaxgan import in `path`;
    `eager`: at module level, run by importing the module."""
    tree = ast.parse(path.read_text(), str(path))
    package = module if path.name == "__init__.py" else module.rpartition(".")[0]
    module_level = {id(n) for n in tree.body}
    for node in ast.walk(tree):
        eager = id(node) in module_level
        if isinstance(node, ast.Import):
            for alias in node.names:
                yield node.lineno, alias.name, f"import {alias.name}", eager
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = package.split(".")
                base = base[:len(base) - (node.level - 1)]
                source = ".".join(base + ([node.module] if node.module else []))
            else:
                source = node.module
            written = f"from {'.' * node.level}{node.module or ''} import "
            for alias in node.names:
                target = f"{source}.{alias.name}"
                if target not in modules:
                    target = lazy.get(alias.name, source) if source == API else source
                yield node.lineno, target, written + alias.name, eager
        elif isinstance(node, ast.Attribute) and isinstance(node.value, ast.Name) and \
                node.value.id == API and node.attr in lazy:
            yield node.lineno, lazy[node.attr], f"jaxgan.{node.attr}", False
        elif isinstance(node, ast.Constant) and isinstance(node.value, str) and \
                node.value in modules and node.value != API:
            yield node.lineno, node.value, f"importlib name {node.value!r}", False


def violations() -> list[str]:
    modules, lazy = all_modules(), lazy_table()
    problems = []
    for module, path in modules.items():
        where = layer_of(module)
        rel = path.relative_to(ROOT)
        if where is None:
            problems.append(f"{rel}: {module} is in no layer; add it to LAYERS in {__file__}")
            continue
        for line, target, written, eager in imports_of(module, path, modules, lazy):
            if target != API and not target.startswith(API + "."):
                continue  # not jaxgan
            if target == API:
                continue  # the package root: see the docstring
            to = layer_of(target)
            if to is None:
                problems.append(f"{rel}:{line}: `{written}` reaches {target}, which is in no layer")
            elif to > where:
                problems.append(f"{rel}:{line}: `{written}` imports UP: {module} "
                                f"({LAYERS[where][0]}) -> {target} ({LAYERS[to][0]})")
            elif module == API and eager and to > 0:
                problems.append(f"{rel}:{line}: `{written}`: jaxgan/__init__.py imports "
                                f"{target} ({LAYERS[to][0]}) eagerly; only the foundation may be")
    return problems


def test_imports_point_down_the_layers():
    problems = violations()
    assert not problems, "imports that run up the layers:\n  " + "\n  ".join(problems)


def test_every_layer_prefix_names_a_module():
    """The table above stays true: no layer names a module that is gone."""
    modules = all_modules()
    stale = [p for _, prefixes in LAYERS for p in prefixes if p not in modules]
    assert not stale, f"LAYERS names modules that do not exist: {stale}"
    assert [name for name, _ in LAYERS[:len(CORE)]] == list(CORE)


def test_no_layer_sits_inside_another():
    """Each layer is whole modules or packages: no prefix lies inside another layer's package
    (as training/loop.py once sat in training/ a layer above it), so a module's package alone
    says its layer."""
    prefixes = [(name, p) for name, ps in LAYERS for p in ps if p != API]
    nested = [(inner, outer) for name, inner in prefixes for other, outer in prefixes
              if name != other and inner.startswith(outer + ".")]
    assert not nested, f"layer prefixes inside another layer's package: {nested}"


def test_the_checker_sees_upward_imports(tmp_path):
    """Known answers for the checker itself: each way of writing an import is seen."""
    modules = {"jaxgan": None, "jaxgan.config": None, "jaxgan.evaluation": None,
               "jaxgan.evaluation.best": None, "jaxgan.sampler": None, LOOP: None,
               "jaxgan.training": None, "jaxgan.training.checkpoint": None}
    lazy = {"load_sampler": "jaxgan.sampler"}
    path = tmp_path / "checkpoint.py"
    path.write_text("import os\n"
                    "from jaxgan import config, __version__\n"
                    "def f():\n"
                    "    from ..evaluation.best import best_step\n"
                    "    from jaxgan import load_sampler\n"
                    "    import jaxgan\n"
                    "    return (jaxgan.load_sampler,\n"
                    "            importlib.import_module('jaxgan.loop'))\n")
    got = [(line, target) for line, target, _, _ in
           imports_of("jaxgan.training.checkpoint", path, modules, lazy)]
    assert sorted(got) == [(1, "os"), (2, "jaxgan"), (2, "jaxgan.config"),
                           (4, "jaxgan.evaluation.best"), (5, "jaxgan.sampler"), (6, "jaxgan"),
                           (7, "jaxgan.sampler"), (8, LOOP)]
    here = layer_of("jaxgan.training.checkpoint")
    assert [layer_of(t) > here for _, t in sorted(got)[3:5]] == [True, True]
