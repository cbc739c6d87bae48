"""structlog set-up: JSON lines for machines, readable lines on a terminal; agent, tab and
contact bound through contextvars.

JSON lines are rendered by orjson and written as bytes: a node logs a line per contact it
elects, so the standard library's encoder was a measurable share of an event's cost."""

import logging
import sys

import orjson
import structlog


def configure(level: str = "info", fmt: str = "auto") -> None:
    """`fmt` "auto": console lines when stderr is a terminal, JSON lines otherwise."""
    console = fmt == "console" or (fmt == "auto" and sys.stderr.isatty())
    renderer: structlog.typing.Processor
    factory: structlog.typing.WrappedLogger
    if console:
        renderer = structlog.dev.ConsoleRenderer(colors=sys.stderr.isatty())
        factory = structlog.PrintLoggerFactory(sys.stderr)
    else:
        renderer = structlog.processors.JSONRenderer(serializer=orjson.dumps)
        factory = structlog.BytesLoggerFactory(sys.stderr.buffer)
    structlog.configure(
        processors=[
            structlog.contextvars.merge_contextvars,
            structlog.processors.add_log_level,
            structlog.processors.TimeStamper(fmt="iso", utc=True),
            structlog.processors.format_exc_info,
            renderer,
        ],
        wrapper_class=structlog.make_filtering_bound_logger(
            logging.getLevelNamesMapping().get(level.upper(), logging.INFO)
        ),
        logger_factory=factory,
        cache_logger_on_first_use=True,
    )
