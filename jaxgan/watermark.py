"""`python -m jaxgan.watermark embed IN OUT | detect FILE...`: the command line of
jaxgan.art.watermark (kept at this path: the README and marked files' users rely on it)."""
import sys

from jaxgan.art.watermark import main

if __name__ == "__main__":
    sys.exit(main())
