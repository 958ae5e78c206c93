"""`python -m cost_report table < outputs.json`: the stack's cost as a table (`make deploy`).
`python -m cost_report comment --stack S --current outputs.json --after cost.json [--post]`: the
pull-request comment (.github/workflows/preview.yml); --post puts it on the pull request."""

from __future__ import annotations

import argparse
import json
import os
import sys

from cost_report.comment import comment_body, post_comment
from cost_report.table import format_table


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(prog="python -m cost_report")
    commands = parser.add_subparsers(dest="command", required=True)
    commands.add_parser("table", help="the monthlyCost of the stack outputs on stdin, as a table")
    comment = commands.add_parser("comment", help="the pull-request comment on one stack's cost")
    comment.add_argument("--stack", required=True)
    comment.add_argument("--current", required=True, help="`pulumi stack output --json` of the stack")
    comment.add_argument("--after", required=True, help="the monthlyCost the preview wrote (MONTHLY_COST_FILE)")
    comment.add_argument("--post", action="store_true", help="post it (GITHUB_TOKEN, GITHUB_REPOSITORY, PR_NUMBER, GITHUB_API_URL)")
    args = parser.parse_args(argv)
    if args.command == "table":
        cost = json.load(sys.stdin).get("monthlyCost")
        if cost is None:
            print("the stack has no monthlyCost output yet", file=sys.stderr)
            return 0
        print(f"Monthly cost:\n{format_table(cost)}")
        return 0
    with open(args.current, encoding="utf-8") as current, open(args.after, encoding="utf-8") as after:
        body = comment_body(args.stack, json.load(current), json.load(after))
    if not args.post:
        sys.stdout.write(body)
        return 0
    url = post_comment(
        body,
        args.stack,
        api=os.environ.get("GITHUB_API_URL", "https://api.github.com"),
        repository=os.environ["GITHUB_REPOSITORY"],
        pull_request=int(os.environ["PR_NUMBER"]),
        token=os.environ["GITHUB_TOKEN"],
    )
    print(f"commented the monthly cost of {args.stack}: {url}")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
