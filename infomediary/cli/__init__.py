"""The ``infomediary`` command: init, demo, customers, keys, audit, backup, jobs, serve, worker.

Every command reads the same ``INFOMEDIARY_*`` settings as the web app. Errors print one
clear line on stderr and exit non-zero; ``--json`` prints machine-readable results.
"""

from __future__ import annotations

import click

from infomediary.cli import (
    accounts,
    audit,
    auditors,
    backup,
    instance,
    jobs,
    keys,
    notifications,
    payouts,
    purchases,
    suppliers,
    worker,
)


@click.group(help=__doc__)
@click.version_option(package_name="infomediary", prog_name="infomediary")
def main() -> None:
    pass


main.add_command(instance.init)
main.add_command(instance.demo)
accounts.customers_group.add_command(purchases.customers_export)
main.add_command(accounts.customers_group)
main.add_command(accounts.outbox)
main.add_command(suppliers.suppliers_group)
main.add_command(keys.keys)
main.add_command(audit.audit)
main.add_command(backup.backup)
main.add_command(auditors.auditors_group)
main.add_command(jobs.jobs_group)
main.add_command(purchases.import_purchases)
main.add_command(payouts.payouts_group)
main.add_command(notifications.notifications_group)
main.add_command(instance.serve)
main.add_command(worker.worker)
