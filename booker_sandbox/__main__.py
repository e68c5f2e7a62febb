"""``python -m booker_sandbox``: serve a sandbox in the foreground until Ctrl-C/SIGTERM."""

from __future__ import annotations

import argparse
import signal
import threading
from datetime import date

from booker_sandbox import BookerSandbox, FaultProfile, SandboxSettings


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="python -m booker_sandbox",
        description="Serve a local Booker API over deterministic data, with the demo credentials.",
    )
    parser.add_argument("--port", type=int, default=8765, help="0 picks a free port")
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument("--locations", type=int, default=4, help="how many locations (1001…)")
    parser.add_argument("--latency-ms", type=float, default=0.0, help="delay before each reply")
    parser.add_argument("--rate", type=float, default=0.0,
                        help="requests per second per subscription key (0: unlimited)")
    parser.add_argument("--burst", type=int, default=20)
    parser.add_argument("--faults", choices=("none", "hostile"), default="none")
    parser.add_argument("--start", type=date.fromisoformat, default=date(2025, 1, 1),
                        help="first day with data (YYYY-MM-DD)")
    parser.add_argument("--variants", type=int, default=None, metavar="SEED",
                        help="serve contract-legal variant forms of every record (legacy-only "
                             "dates, quoted numbers, short pages...), drawn from SEED")
    parser.add_argument("--shapes", action="store_true",
                        help="with --variants: also serve every field that places nothing in "
                             "another shape (a lookup as text, text as a lookup, a list, null...)")
    return parser.parse_args(argv)


def banner(sandbox: BookerSandbox) -> str:
    creds = sandbox.credentials
    exports = {
        "BOOKER_BASE_URL": sandbox.url,
        "BOOKER_CLIENT_ID": creds["client_id"],
        "BOOKER_CLIENT_SECRET": creds["client_secret"],
        "BOOKER_SUBSCRIPTION_KEY": creds["subscription_key"],
        "BOOKER_PERSONAL_ACCESS_TOKEN": creds["personal_access_token"],
        "BOOKER_LOCATION_IDS": ",".join(map(str, sandbox.location_ids)),
    }
    lines = [f"Booker sandbox serving at {sandbox.url}", "Demo credentials:"]
    lines += [f"  {name}: {value}" for name, value in creds.items()]
    lines += ["Point booker-assets at it with:"]
    lines += [f"export {name}={value}" for name, value in exports.items()]
    return "\n".join(lines)


def settings_from(args: argparse.Namespace) -> SandboxSettings:
    return SandboxSettings(
        seed=args.seed, location_count=args.locations, start_date=args.start,
        latency_ms=args.latency_ms, rate_per_second=args.rate, burst=args.burst,
        faults=FaultProfile.hostile() if args.faults == "hostile" else FaultProfile(),
        variants=args.variants, shapes=args.shapes,
    )


def main(argv: list[str] | None = None) -> None:
    args = parse_args(argv)
    settings = settings_from(args)
    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    with BookerSandbox(settings, port=args.port) as sandbox:
        print(banner(sandbox), flush=True)
        try:
            while not stop.wait(0.5):  # a timed wait lets Ctrl-C through
                pass
        except KeyboardInterrupt:
            pass
        print("Booker sandbox stopped.", flush=True)


if __name__ == "__main__":
    main()
