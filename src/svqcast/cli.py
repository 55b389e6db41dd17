"""The ``svqcast`` command. User errors become one line on stderr and exit status 2."""

from __future__ import annotations

import sys

from svqcast.errors import SvqcastError


def main(argv: list[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    try:
        if argv[:1] in (["--version"], ["version"]):
            from svqcast import __version__

            print(__version__)
            return 0
        print("usage: svqcast {fit,validate,test,predict,data,reproduce,demo} ...")
        return 0 if not argv else 2
    except SvqcastError as exc:
        print(f"svqcast: error: {exc}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    raise SystemExit(main())
