"""The cost as people see it (cost_report/): the table `make deploy` prints from the stack outputs,
and the pull-request comment per stack (now, after the change, the difference), posted once and
edited on each push, against a fake GitHub API (tests/fake_github.py)."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

from cost_report.comment import MARKER, comment_body, post_comment
from tests import fake_github
from tests.harness import REPO, stack_config
from tests.program import cost_of, seed_with


@pytest.fixture(scope="module")
def seed_cost() -> dict:
    return cost_of(stack_config("west-east"))


def row(body: str, cluster: str, item: str) -> str:
    (line,) = [line for line in body.splitlines() if line.startswith(f"| {cluster} | {item} |")]
    return line


def test_the_comment_gives_now_after_and_the_difference(seed_cost):
    after = cost_of(seed_with(east={"controlPlaneHa": True}, west={"nodeCount": 4}))
    body = comment_body("west-east", {"clusters": {}, "monthlyCost": seed_cost}, after)
    assert body.startswith(MARKER.format(stack="west-east") + "\n#### Monthly cost of `west-east` (USD)")
    assert "| $636.00 | $772.00 | +$136.00 |" in body
    assert row(body, "east", "HA control plane") == "| east | HA control plane | 1 | $40.00 | $40.00 | +$40.00 |"
    assert row(body, "west", "worker nodes s-8vcpu-16gb") == "| west | worker nodes s-8vcpu-16gb | 4 | $96.00 | $384.00 | +$96.00 |"
    assert row(body, "east", "gateway load balancer").endswith("| ±$0.00 |")
    assert "Not included: outbound transfer at $0.01 per GiB" in body


def test_a_removed_item_and_a_cheaper_stack_show_negative(seed_cost):
    after = cost_of(seed_with(west={"nodeSize": "s-4vcpu-8gb"}))
    body = comment_body("west-east", {"monthlyCost": seed_cost}, after)
    assert "| $636.00 | $492.00 | -$144.00 |" in body
    assert row(body, "west", "worker nodes s-8vcpu-16gb") == "| west | worker nodes s-8vcpu-16gb | removed | $96.00 | $0.00 | -$288.00 |"
    assert row(body, "west", "worker nodes s-4vcpu-8gb") == "| west | worker nodes s-4vcpu-8gb | 3 | $48.00 | $144.00 | +$144.00 |"


def test_a_stack_without_a_deployed_cost_is_new(seed_cost):
    body = comment_body("dev", {}, seed_cost)
    assert "| new (not deployed yet) | $636.00 | +$636.00 |" in body
    assert row(body, "east", "gateway load balancer").endswith("| +$12.00 |")


def test_the_limit_is_shown_when_set():
    after = cost_of({**stack_config("dev"), "linkerd-mesh:costLimitMonthly": "200"})
    assert "Limit (`costLimitMonthly`): $200.00 a month." in comment_body("dev", {}, after)


def test_one_comment_per_stack_edited_in_place_past_the_first_page(seed_cost):
    with fake_github.serve() as github:
        for n in range(120):
            github.add(7, f"review comment {n}")
        other = github.add(7, MARKER.format(stack="dev") + "\nthe dev stack's cost")
        post = dict(api=github.url, repository=fake_github.REPOSITORY, pull_request=7, token=fake_github.TOKEN)
        mine = MARKER.format(stack="west-east")  # comment_body starts with it
        first = post_comment(f"{mine}\nfirst", "west-east", **post)
        assert github.comments[7][-1]["body"] == f"{mine}\nfirst"
        second = post_comment(f"{mine}\nsecond", "west-east", **post)
        assert second == first and len(github.comments[7]) == 122
        assert github.comments[7][-1]["body"] == f"{mine}\nsecond" and other["body"].endswith("the dev stack's cost")
        assert ("GET", "/repos/acme/mesh/issues/7/comments?per_page=100&page=2") in github.requests


def test_posting_with_a_bad_token_fails_loudly():
    with fake_github.serve() as github, pytest.raises(Exception, match="401"):
        post_comment("x", "dev", api=github.url, repository=fake_github.REPOSITORY, pull_request=7, token="wrong")


def _cli(*args: str, stdin: str = "", env: dict | None = None) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "cost_report", *args], cwd=REPO, input=stdin, capture_output=True, text=True, timeout=30, env=env)


def test_the_table_command_prints_the_cost_of_the_stack_outputs(seed_cost):
    result = _cli("table", stdin=json.dumps({"kubeconfigs": {}, "monthlyCost": seed_cost}))
    assert result.returncode == 0, result.stderr
    assert result.stdout.startswith("Monthly cost:\ncluster  item")
    assert "total: $636.00 a month (about $0.9464 an hour), in USD" in result.stdout
    older = _cli("table", stdin="{}")
    assert older.returncode == 0 and older.stdout == "" and "no monthlyCost output yet" in older.stderr


def test_the_comment_command_posts_what_it_builds(tmp_path, seed_cost):
    (tmp_path / "current.json").write_text("{}")
    (tmp_path / "after.json").write_text(json.dumps(seed_cost))
    files = ["--stack", "dev", "--current", str(tmp_path / "current.json"), "--after", str(tmp_path / "after.json")]
    printed = _cli("comment", *files)
    assert printed.returncode == 0 and printed.stdout == comment_body("dev", {}, seed_cost)
    with fake_github.serve() as github:
        env = {"PATH": "/usr/bin:/bin", "GITHUB_API_URL": github.url, "GITHUB_REPOSITORY": fake_github.REPOSITORY, "PR_NUMBER": "3", "GITHUB_TOKEN": fake_github.TOKEN}
        posted = _cli("comment", *files, "--post", env=env)
        assert posted.returncode == 0, posted.stderr
        assert [c["body"] for c in github.comments[3]] == [printed.stdout]
