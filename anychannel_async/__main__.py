"""`python -m anychannel_async`: the same as the `anychannel-async` command."""

from .cli import main

if __name__ == "__main__":
    raise SystemExit(main())
