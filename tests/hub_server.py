"""A minimal Hub-compatible HTTP server on 127.0.0.1 for end-to-end tests of pushing and loading.

It speaks the part of the Hub API that `huggingface_hub` uses to create a model repo, validate a card's YAML, commit
files (every file uploaded inline, "regular" mode), read repo info, list folders and resolve files by revision (a
branch or a commit sha). Repos
live in memory; each commit gets a new sha. Point `HF_ENDPOINT` at `server.url`.
"""

import base64
import hashlib
import json
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import unquote, urlparse


class Repo:
    def __init__(self):
        self.commits = []  # [(sha, {path: bytes})], oldest first
        self.branches = {"main": None}

    def files(self, revision):
        sha = self.branches.get(revision, revision)
        for commit_sha, files in self.commits:
            if commit_sha == sha:
                return commit_sha, files
        if sha is None:
            return None, {}
        raise KeyError(revision)


class HubServer:
    def __init__(self, host="127.0.0.1", port=0):
        self.repos: dict[str, Repo] = {}
        self.requests: list[tuple[str, str]] = []
        server = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *args):  # keep test output clean
                pass

            def do_HEAD(self):
                server._route(self, "HEAD")

            def do_GET(self):
                server._route(self, "GET")

            def do_POST(self):
                server._route(self, "POST")

        self.httpd = ThreadingHTTPServer((host, port), Handler)
        self.url = f"http://{host}:{self.httpd.server_address[1]}"
        self.thread = threading.Thread(target=self.httpd.serve_forever, daemon=True)

    def __enter__(self):
        self.thread.start()
        return self

    def __exit__(self, *exc):
        self.httpd.shutdown()
        self.httpd.server_close()

    # ----------------------------------------------------------------------------------------- responses
    @staticmethod
    def _send(handler, status, body=b"", headers=None, head=False):
        if isinstance(body, (dict, list)):
            body = json.dumps(body).encode()
            headers = {"Content-Type": "application/json", **(headers or {})}
        handler.send_response(status)
        for key, value in (headers or {}).items():
            handler.send_header(key, value)
        handler.send_header("Content-Length", str(len(body)))
        handler.end_headers()
        if not head:
            handler.wfile.write(body)

    def _error(self, handler, status, code, message, head=False):
        self._send(handler, status, {"error": message}, {"X-Error-Code": code, "X-Error-Message": message}, head)

    def _body(self, handler):
        length = int(handler.headers.get("Content-Length") or 0)
        return handler.rfile.read(length) if length else b""

    # ----------------------------------------------------------------------------------------- routing
    def _route(self, handler, method):
        path = unquote(urlparse(handler.path).path)
        self.requests.append((method, path))
        parts = path.strip("/").split("/")
        try:
            if method == "GET" and path.startswith("/api/whoami"):
                return self._send(handler, 200, {"name": "tester", "type": "user", "orgs": [],
                                                 "auth": {"accessToken": {"role": "write"}}})
            if method == "POST" and path == "/api/repos/create":
                return self._create(handler)
            if method == "POST" and path == "/api/validate-yaml":
                return self._validate_yaml(handler)
            if parts[0] == "api" and parts[1] == "models" and len(parts) >= 4:
                repo_id = "/".join(parts[2:4])
                rest = parts[4:]
                if method == "POST" and rest[:1] == ["preupload"]:
                    return self._preupload(handler, repo_id)
                if method == "POST" and rest[:1] == ["commit"]:
                    return self._commit(handler, repo_id, "/".join(rest[1:]) or "main")
                if method == "GET" and rest[:1] == ["tree"] and len(rest) >= 2:
                    return self._tree(handler, repo_id, rest[1], "/".join(rest[2:]))
                if method == "GET" and (not rest or rest[0] == "revision"):
                    return self._info(handler, repo_id, "/".join(rest[1:]) if rest else "main")
            if len(parts) >= 5 and parts[2] == "resolve":
                return self._resolve(handler, "/".join(parts[:2]), parts[3], "/".join(parts[4:]), method)
        except KeyError as error:
            return self._error(handler, 404, "RevisionNotFound", f"revision {error} not found", method == "HEAD")
        return self._error(handler, 404, "RepoNotFound", f"no route for {method} {path}", method == "HEAD")

    def _create(self, handler):
        data = json.loads(self._body(handler) or b"{}")
        repo_id = f"{data['organization']}/{data['name']}" if data.get("organization") else data["name"]
        if "/" not in repo_id:
            repo_id = f"tester/{repo_id}"
        if repo_id in self.repos:
            return self._error(handler, 409, "RepoExists", "You already created this model repo")
        self.repos[repo_id] = Repo()
        return self._send(handler, 200, {"url": f"{self.url}/{repo_id}", "name": repo_id, "id": repo_id})

    def _validate_yaml(self, handler):
        import yaml

        content = json.loads(self._body(handler)).get("content", "")
        try:
            header = content.split("---")[1] if content.startswith("---") else ""
            yaml.safe_load(header)
        except (yaml.YAMLError, IndexError) as error:
            return self._send(handler, 400, {"error": f"invalid YAML: {error}"})
        return self._send(handler, 200, {"errors": [], "warnings": []})

    def _repo(self, handler, repo_id, head=False):
        if repo_id not in self.repos:
            self._error(handler, 404, "RepoNotFound", f"Repository {repo_id} not found", head)
            return None
        return self.repos[repo_id]

    def _preupload(self, handler, repo_id):
        if self._repo(handler, repo_id) is None:
            return
        data = json.loads(self._body(handler))
        files = [{"path": f["path"], "uploadMode": "regular", "shouldIgnore": False, "oid": None}
                 for f in data.get("files", [])]
        return self._send(handler, 200, {"files": files, "commitOid": None})

    def _commit(self, handler, repo_id, revision):
        repo = self._repo(handler, repo_id)
        if repo is None:
            return
        _, files = repo.files(revision)
        files = dict(files)
        summary = ""
        for line in self._body(handler).decode().splitlines():
            if not line.strip():
                continue
            entry = json.loads(line)
            value = entry["value"]
            if entry["key"] == "header":
                summary = value.get("summary", "")
            elif entry["key"] == "file":
                files[value["path"]] = base64.b64decode(value["content"])
            elif entry["key"] == "deletedFile":
                files.pop(value["path"], None)
            else:
                return self._error(handler, 400, "BadRequest", f"unsupported commit entry {entry['key']}")
        sha = hashlib.sha1(f"{repo_id}{len(repo.commits)}{summary}{time.time()}".encode()).hexdigest()
        repo.commits.append((sha, files))
        repo.branches[revision if revision in repo.branches else "main"] = sha
        return self._send(handler, 200, {"commitUrl": f"{self.url}/{repo_id}/commit/{sha}", "commitOid": sha,
                                         "commitMessage": summary, "pullRequestUrl": None})

    def _info(self, handler, repo_id, revision):
        repo = self._repo(handler, repo_id)
        if repo is None:
            return
        sha, files = repo.files(revision or "main")
        return self._send(handler, 200, {
            "id": repo_id, "modelId": repo_id, "sha": sha, "private": False, "disabled": False, "gated": False,
            "siblings": [{"rfilename": name, "size": len(data)} for name, data in sorted(files.items())],
            "tags": [], "downloads": 0, "likes": 0, "lastModified": "2026-01-01T00:00:00.000Z",
        })

    def _tree(self, handler, repo_id, revision, folder):
        repo = self._repo(handler, repo_id)
        if repo is None:
            return
        _, files = repo.files(revision)
        prefix = folder.rstrip("/") + "/" if folder else ""
        entries = [{"type": "file", "path": name, "size": len(data), "oid": hashlib.sha1(data).hexdigest()}
                   for name, data in sorted(files.items()) if name.startswith(prefix)]
        if folder and not entries:
            return self._error(handler, 404, "EntryNotFound", f"{folder} does not exist at {revision}")
        return self._send(handler, 200, entries)

    def _resolve(self, handler, repo_id, revision, filename, method):
        head = method == "HEAD"
        repo = self._repo(handler, repo_id, head)
        if repo is None:
            return
        sha, files = repo.files(revision)
        if filename not in files:
            return self._error(handler, 404, "EntryNotFound", f"{filename} does not exist at {revision}", head)
        data = files[filename]
        etag = '"' + hashlib.sha1(data).hexdigest() + '"'
        return self._send(handler, 200, data, {"X-Repo-Commit": sha, "ETag": etag,
                                               "Content-Type": "application/octet-stream"}, head)
