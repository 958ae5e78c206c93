"""A fake of the three GitHub REST calls the pull-request cost comment makes, served over HTTP
(docs.github.com/en/rest/issues/comments): list a pull request's comments (per_page at most 100,
default 30; `page` from 1), create one, edit one by id. Anything without the token gets 401."""

from __future__ import annotations

import json
import re
import threading
from contextlib import contextmanager
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Iterator
from urllib.parse import parse_qs, urlparse

TOKEN = "ghs_fake_workflow_token"
REPOSITORY = "acme/mesh"


@dataclass
class FakeGitHub:
    url: str = ""
    # Pull request number -> its comments, oldest first.
    comments: dict[int, list[dict]] = field(default_factory=dict)
    requests: list[tuple[str, str]] = field(default_factory=list)

    def add(self, pull_request: int, body: str) -> dict:
        comment = {"id": 1000 + sum(map(len, self.comments.values())), "body": body}
        comment["html_url"] = f"https://github.com/{REPOSITORY}/pull/{pull_request}#issuecomment-{comment['id']}"
        self.comments.setdefault(pull_request, []).append(comment)
        return comment


@contextmanager
def serve() -> Iterator[FakeGitHub]:
    github = FakeGitHub()

    class Handler(BaseHTTPRequestHandler):
        def log_message(self, *args) -> None:
            pass

        def _answer(self, status: int, body) -> None:
            data = json.dumps(body).encode()
            self.send_response(status)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)

        def _handle(self) -> None:
            url = urlparse(self.path)
            github.requests.append((self.command, self.path))
            if self.headers.get("Authorization") != f"Bearer {TOKEN}":
                return self._answer(401, {"message": "Bad credentials"})
            body = json.loads(self.rfile.read(int(self.headers.get("Content-Length") or 0)) or b"null")
            listing = re.fullmatch(rf"/repos/{REPOSITORY}/issues/(\d+)/comments", url.path)
            edit = re.fullmatch(rf"/repos/{REPOSITORY}/issues/comments/(\d+)", url.path)
            if listing and self.command == "GET":
                query = parse_qs(url.query)
                per_page = min(int(query.get("per_page", ["30"])[0]), 100)
                page = int(query.get("page", ["1"])[0])
                comments = github.comments.get(int(listing.group(1)), [])
                return self._answer(200, comments[(page - 1) * per_page : page * per_page])
            if listing and self.command == "POST":
                return self._answer(201, github.add(int(listing.group(1)), body["body"]))
            if edit and self.command == "PATCH":
                comment = next((c for cs in github.comments.values() for c in cs if c["id"] == int(edit.group(1))), None)
                if comment is None:
                    return self._answer(404, {"message": "Not Found"})
                comment["body"] = body["body"]
                return self._answer(200, comment)
            return self._answer(404, {"message": "Not Found"})

        do_GET = do_POST = do_PATCH = _handle

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    github.url = f"http://127.0.0.1:{server.server_port}"
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield github
    finally:
        server.shutdown()
        server.server_close()
