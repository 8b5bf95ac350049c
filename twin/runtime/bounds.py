"""Limits on what clients can make the twin hold: message sizes and queue lengths.

docs/reliability.md states them all; ``twin.runtime.server`` applies them to its sockets.
"""

# A command body past twin.runtime.dispatch.MAX_COMMAND_BYTES is answered with an error; a
# frame past COMMAND_MAX_FRAME_BYTES never reaches us: libzmq disconnects its sender
# (ZMQ_MAXMSGSIZE).
COMMAND_MAX_FRAME_BYTES = 1 << 20
# Requests queued per client before libzmq stops reading its connection, and replies queued
# per client that does not read them before further replies to it are dropped (counted).
# A client may pipeline 16 requests and read as it goes (libzmq reports reads back to the
# writer in batches of half the queue, so a queue of 16 could drop replies of a client
# that keeps 16 in flight); 32 starlink meta replies are 4.5 MB.
COMMAND_RECEIVE_QUEUE = 64
COMMAND_REPLY_QUEUE = 32
# Replies libzmq will not take at once wait in the twin, bounded: twin.runtime.replies.
# Messages, not bytes: a few whole frames may queue per subscriber, then PUB drops.
PUB_HIGH_WATER_MARK = 50
# Telemetry: a frame past INGEST_MAX_FRAME_BYTES disconnects its sender; a message past
# INGEST_MAX_MESSAGE_BYTES or INGEST_MAX_FRAMES is dropped and counted. At most
# INGEST_HIGH_WATER_MARK messages wait per bridge: 16 of the largest allowed hold 64 MB,
# and a bridge's own (~100 kB) messages about 2 MB; the bridge queues the rest itself.
INGEST_MAX_FRAME_BYTES = 1 << 20
INGEST_MAX_MESSAGE_BYTES = 4 << 20
INGEST_MAX_FRAMES = 66
INGEST_HIGH_WATER_MARK = 16
