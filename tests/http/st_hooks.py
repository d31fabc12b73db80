"""Schemathesis hooks (loaded with SCHEMATHESIS_HOOKS): validate msgpack responses too."""

import msgpack
import schemathesis


@schemathesis.deserializer("application/msgpack")
def msgpack_body(ctx, response):
    return msgpack.unpackb(response.content, raw=False)
