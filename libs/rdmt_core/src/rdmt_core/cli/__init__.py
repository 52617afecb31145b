"""The ``rdmt`` command line.

One group and its commands, each in the module of what it does: the embedded pipeline and the store
(:mod:`.embedded`: ``run``, ``sql``, ``history``; :mod:`.demo`), synthetic files (:mod:`.make_fake`), the
Kafka tools (:mod:`.topics`, :mod:`.publish`, :mod:`.subscribe`, :mod:`.replay`) and the services
(:mod:`.service`), and the
dashboard (:mod:`.serve`). Command modules import only click and the standard library when they load, so
``rdmt --help`` costs no numpy, pydantic or Kafka client: each command imports what it needs when it runs.
"""

from __future__ import annotations

import logging
import sys

import click

from . import demo, embedded, kafka_tools, make_fake, serve, service


@click.group()
@click.option("-v", "--verbose", is_flag=True, help="Log debug messages.")
@click.version_option(package_name="rdmt-core")
def main(verbose: bool) -> None:
    """RDMT: data-quality monitoring of Roman WFI reference files and images."""
    logging.basicConfig(
        level=logging.DEBUG if verbose else logging.INFO,
        format="%(levelname)s %(name)s: %(message)s",
        stream=sys.stderr,
    )


for _command in (
    embedded.run, embedded.sql, embedded.history, demo.demo, make_fake.make_fake,
    kafka_tools.topics, service.service, serve.serve, kafka_tools.publish, kafka_tools.subscribe, kafka_tools.replay,
):  # fmt: skip
    main.add_command(_command)
