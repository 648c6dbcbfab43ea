"""The longest functions in jaxgan/ (name, lines, parameters), read from the source with `ast`.

  python benchmarks/function_sizes.py [--top 20] [--max-lines 50] [--max-params 8] [PATH ...]

Prints the `--top` longest functions and methods, then every one over `--max-lines` lines or
`--max-params` parameters (issue 33's bound for the core), then the totals. Lines are the
function's span in the file (decorators excluded, its docstring and comments included: a long
docstring is part of what a reader must get through); parameters count every name in the
signature (self/cls excluded, *args and **kwargs included). Nested functions are counted on
their own and inside their parent. Nothing is imported or run, so it measures any checkout:
`git stash; python benchmarks/function_sizes.py; git stash pop` gives the before and after.
"""
from __future__ import annotations

import argparse
import ast
import pathlib

ROOT = pathlib.Path(__file__).resolve().parent.parent


def functions(path: pathlib.Path):
    """(qualified name, lines, parameters) of every function in one file."""
    tree = ast.parse(path.read_text(), filename=str(path))
    module = ".".join(path.relative_to(ROOT).with_suffix("").parts)

    def visit(node, prefix):
        for child in ast.iter_child_nodes(node):
            if isinstance(child, (ast.FunctionDef, ast.AsyncFunctionDef)):
                name = f"{prefix}.{child.name}"
                yield name, child.end_lineno - child.lineno + 1, parameter_count(child.args)
                yield from visit(child, name)
            elif isinstance(child, ast.ClassDef):
                yield from visit(child, f"{prefix}.{child.name}")
            else:
                yield from visit(child, prefix)

    yield from visit(tree, module)


def parameter_count(args: ast.arguments) -> int:
    names = [a.arg for a in args.posonlyargs + args.args + args.kwonlyargs]
    names += [a.arg for a in (args.vararg, args.kwarg) if a is not None]
    return len([n for n in names if n not in ("self", "cls")])


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("paths", nargs="*", default=[str(ROOT / "jaxgan")])
    parser.add_argument("--top", type=int, default=20)
    parser.add_argument("--max-lines", type=int, default=50)
    parser.add_argument("--max-params", type=int, default=8)
    args = parser.parse_args(argv)
    files = sorted(f for p in map(pathlib.Path, args.paths)
                   for f in ([p] if p.is_file() else p.rglob("*.py")))
    rows = [row for f in files for row in functions(f.resolve())]
    width = max(len(name) for name, _, _ in rows)
    print(f"{'function':<{width}}  lines  params")
    for name, lines, params in sorted(rows, key=lambda r: -r[1])[:args.top]:
        print(f"{name:<{width}}  {lines:5d}  {params:6d}")
    over = [r for r in rows if r[1] > args.max_lines or r[2] > args.max_params]
    print(f"\nover {args.max_lines} lines or {args.max_params} parameters ({len(over)}):")
    for name, lines, params in sorted(over, key=lambda r: (-r[1], -r[2])):
        print(f"{name:<{width}}  {lines:5d}  {params:6d}")
    print(f"\n{len(rows)} functions in {len(files)} files; "
          f"{sum(r[1] > args.max_lines for r in rows)} over {args.max_lines} lines, "
          f"{sum(r[2] > args.max_params for r in rows)} over {args.max_params} parameters")


if __name__ == "__main__":
    main()
