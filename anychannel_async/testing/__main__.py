"""`python -m anychannel_async.testing`: run the emulator until SIGINT or SIGTERM."""

from ._standalone import main

if __name__ == "__main__":
    raise SystemExit(main())
