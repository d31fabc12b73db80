"""Schemathesis hooks (loaded with SCHEMATHESIS_HOOKS): validate msgpack responses too."""

import msgpack
import schemathesis


@schemathesis.deserializer("application/msgpack")
def msgpack_body(ctx, response):
    return msgpack.unpackb(response.content, raw=False)


MAX_WAIT_S = 0.2  # the long-poll is exercised, without each generated wait=60 taking a minute


@schemathesis.hook
def map_query(ctx, query):
    """Cap ``wait`` (GET /v1/sagas/{id}?wait=): schemathesis' own request timeout is 10 s."""
    if query and "wait" in query:
        try:
            if float(query["wait"]) > MAX_WAIT_S:
                query = {**query, "wait": MAX_WAIT_S}
        except (TypeError, ValueError):
            pass  # a malformed value: sent as is (answered 422 at once)
    return query
