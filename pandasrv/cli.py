"""The ``pandasrv`` command: serve, daemon, db, queue, pilot, submit, config."""

from __future__ import annotations

import json
import sys

import click

from pandasrv.config import ConfigError, Settings, load_settings, show


def settings_from(ctx: click.Context, **overrides: object) -> Settings:
    """Load the settings once per command; a bad setting ends the program with a one-line message."""
    try:
        return load_settings(ctx.obj.get("config"), **overrides)
    except ConfigError as exc:
        click.echo(f"pandasrv: {exc}", err=True)
        sys.exit(2)


@click.group()
@click.option("--config", "config_file", envvar="PANDASRV_CONFIG", help="TOML settings file.")
@click.pass_context
def main(ctx: click.Context, config_file: str | None) -> None:
    """PanDA server: web API, job database and time-based daemon."""
    ctx.ensure_object(dict)
    ctx.obj["config"] = config_file


@main.group()
def config() -> None:
    """Inspect the settings."""


@config.command("show")
@click.option("--db", "db_url", help="Database URL (overrides PANDASRV_DB_URL).")
@click.pass_context
def config_show(ctx: click.Context, db_url: str | None) -> None:
    """Print the effective settings, secrets masked."""
    click.echo(json.dumps(show(settings_from(ctx, db_url=db_url)), indent=2, default=str))


if __name__ == "__main__":
    main()
