"""python -m jaxgan.gallery --workdir W [--step N|best] [--num 64] [--port 8765] [--host 127.0.0.1]
python -m jaxgan.gallery report --workdir W [--csv FILE] [--sheets DIR]"""
from __future__ import annotations

import argparse
import logging
import os
import sys

from jaxgan.errors import UserError


def _step(text: str):
    if text in ("best", "latest"):
        return None if text == "latest" else text
    if not text.isdigit():
        raise argparse.ArgumentTypeError(f"--step takes a number, best or latest, got {text!r}")
    return int(text)


def serve_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m jaxgan.gallery",
        description="Serve a local gallery: rate generated images, take blind real-or-generated "
                    "trials. (`python -m jaxgan.gallery report --workdir W` summarises them.)")
    parser.add_argument("--workdir", required=True, help="a training workdir (checkpoints/)")
    parser.add_argument("--step", type=_step, default=None,
                        help="checkpoint step, 'best' or 'latest' (default)")
    parser.add_argument("--num", type=int, default=64, help="images in the gallery (1-1024)")
    parser.add_argument("--seed", type=int, default=0,
                        help="which image set: seeds from SEED*1,000,000 on")
    parser.add_argument("--trials", type=int, default=20, help="blind trials per rater (2-200)")
    parser.add_argument("--port", type=int, default=8765, help="0: any free port")
    parser.add_argument("--host", default="127.0.0.1",
                        help="interface to listen on (default: this machine only)")
    return parser


def report_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m jaxgan.gallery report",
                                     description="Summarise the judgements of a workdir.")
    parser.add_argument("--workdir", required=True)
    parser.add_argument("--csv", help="write every judgement to this CSV file")
    parser.add_argument("--sheets", help="folder for favourites.png and looks_copied.png "
                                         "(default: WORKDIR/gallery)")
    return parser


def serve(args) -> None:
    if not 1 <= args.num <= 1024:
        raise UserError(f"--num must be 1-1024, got {args.num}")
    if not 2 <= args.trials <= 200:
        raise UserError(f"--trials must be 2-200, got {args.trials}")
    if not 0 <= args.port <= 65535:
        raise UserError(f"--port must be 0-65535, got {args.port}")
    if not 0 <= args.seed < 4000:
        raise UserError(f"--seed must be 0-3999, got {args.seed}")  # seeds stay below 2**32
    import jaxgan
    from jaxgan.gallery import server as server_lib
    sampler = jaxgan.load_sampler(args.workdir, args.step)
    print(f"Drawing {args.num} images (step {sampler.step}) and loading real images ...",
          flush=True)
    gallery = server_lib.Gallery(sampler, args.workdir, args.seed, args.num, args.trials)
    try:
        server = server_lib.make_server(gallery, args.host, args.port)
    except OSError as error:
        raise UserError(f"cannot listen on {args.host}:{args.port}: {error.strerror}") from None
    host, port = server.server_address[:2]
    shown = "127.0.0.1" if host in ("0.0.0.0", "::") else host
    print(f"Gallery of {args.workdir} (step {sampler.step}) at http://{shown}:{port}/  "
          f"(judgements: {os.path.join(args.workdir, 'ratings.sqlite')}; Ctrl-C stops)", flush=True)
    if args.host not in ("127.0.0.1", "localhost", "::1"):
        print(f"Listening on {args.host}: anyone who can reach this machine can rate and read "
              "the images (there is no login).", flush=True)
    try:
        server.serve_forever()
    except KeyboardInterrupt:
        pass
    finally:
        server.server_close()


def report(args) -> None:
    from jaxgan.gallery import report as report_lib, store as store_lib
    if args.csv and not os.path.isdir(os.path.dirname(os.path.abspath(args.csv))):
        raise UserError(f"--csv {args.csv}: its folder does not exist")
    path = store_lib.db_path(args.workdir)
    if not os.path.exists(path):
        raise UserError(f"no judgements yet: {path} does not exist (start the gallery first)")
    rows = store_lib.Store(path).rows()
    summary = report_lib.summarise(rows)
    for line in report_lib.format_report(summary):
        print(line)
    if args.csv:
        report_lib.write_csv(rows, args.csv)
        print(f"Wrote {args.csv}: {len(rows)} judgements.")
    sheets = args.sheets or os.path.join(args.workdir, "gallery")
    for name, flagged in (("favourites.png", summary.favourites),
                          ("looks_copied.png", summary.copied)):
        if flagged:
            import jaxgan
            out = os.path.join(sheets, name)
            try:
                report_lib.contact_sheet(args.workdir, flagged, out, jaxgan.load_sampler)
            except UserError as error:  # e.g. the checkpoint of those judgements was deleted
                print(f"Cannot draw {name}: {error}")
                continue
            print(f"Wrote {out}: {len(flagged)} image{'s' if len(flagged) != 1 else ''}.")


def main(argv=None) -> int:
    argv = sys.argv[1:] if argv is None else list(argv)
    logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(name)s: %(message)s")
    try:
        if argv[:1] == ["report"]:
            report(report_parser().parse_args(argv[1:]))
        else:
            serve(serve_parser().parse_args(argv[1:] if argv[:1] == ["serve"] else argv))
    except UserError as error:
        print(f"error: {error}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
