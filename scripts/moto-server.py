"""The moto server the test suite runs, with DynamoDB requests handled one at a time.

Real DynamoDB isolates each request: of two concurrent transactions whose conditions conflict,
one is cancelled. moto applies a request as check-then-write on shared state without a lock
(and, when a transaction fails, puts back a copy of the whole table taken before it started),
so two concurrent TransactWriteItems can both pass a condition only one may pass, or one can
undo the other. Serializing DynamoDB requests gives the emulator the isolation the service has.
Other services stay concurrent: an SQS long poll waits inside its request.

Usage: python scripts/moto-server.py HOST PORT
"""

import sys
import threading

from moto.moto_server.werkzeug_app import DomainDispatcherApplication, MotoRequestHandler, create_backend_app
from werkzeug.serving import run_simple

backend = DomainDispatcherApplication(create_backend_app)
dynamodb = threading.Lock()


def app(environ, start_response):
    if environ.get("HTTP_X_AMZ_TARGET", "").startswith("DynamoDB_"):
        with dynamodb:
            # The whole response is produced under the lock: moto may work while it is read.
            return [b"".join(backend(environ, start_response))]
    return backend(environ, start_response)


if __name__ == "__main__":
    host, port = sys.argv[1], int(sys.argv[2])
    run_simple(host, port, app, threaded=True, request_handler=MotoRequestHandler)
