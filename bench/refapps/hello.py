"""Reference app 1: falcon's hello world, the ceiling of the stack (gunicorn gthread + falcon + the load generator).

    gunicorn --chdir <repo> bench.refapps.hello:app --workers 2 --threads 4

Every path answers 200 with a short body, so the pilot's and the submitter's requests can be sent to it
unchanged; the rate it reaches under the same load generator shows that the generator is not the bottleneck.
"""

from __future__ import annotations

from typing import Any

import falcon


def hello(req: falcon.Request, resp: falcon.Response, **params: Any) -> None:
    resp.content_type = falcon.MEDIA_TEXT
    resp.data = b"hello"


app = falcon.App()
app.add_sink(hello, "/")
