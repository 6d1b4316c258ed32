"""Per-invocation context: settings, database, AWS and SSH, each opened lazily.

Handlers receive a :class:`Context`; nothing heavy is imported or connected
until a handler asks for it, which keeps ``--help`` and completion fast.
"""

from .output import Output


class Context:
    def __init__(self, args, settings=None, output=None):
        self.args = args
        self._settings = settings
        self.out = output or Output(getattr(args, "output", "table"), getattr(args, "quiet", False),
                                    verbose=getattr(args, "verbose", 0), dry_run=self.dry_run)
        self._engine = None
        self._schema_checked = False
        self._aws = None
        self._ssh = None

    @property
    def dry_run(self):
        return bool(getattr(self.args, "dry_run", False))

    @property
    def settings(self):
        if self._settings is None:
            from ..core.settings import load_settings

            self._settings = load_settings()
        return self._settings

    def engine(self, require_current_schema=True):
        """The database engine; by default refuses a schema that is not at head (checked once
        per invocation: a schema found current stays so for the command's few seconds)."""
        if self._engine is None:
            from ..store.db import create_engine

            self._engine = create_engine(self.settings.db_url)
        if require_current_schema and not self._schema_checked:
            from ..store.migrate import require_current

            require_current(self._engine)
            self._schema_checked = True
        return self._engine

    @property
    def aws(self):
        """Per-region boto3 clients (amslib.aws.clients.AwsClients)."""
        if self._aws is None:
            from ..aws.clients import AwsClients

            self._aws = AwsClients(
                self.settings,
                profile=getattr(self.args, "profile", None),
                region=getattr(self.args, "region", None),
            )
        return self._aws

    @property
    def ssh(self):
        """One SSH connection per host for the life of this command."""
        if self._ssh is None:
            from ..ssh.pool import SshPool

            self._ssh = SshPool(self.settings)
        return self._ssh

    def prepare_for_threads(self):
        """Create the shared AWS clients and SSH pool now, before worker threads use them."""
        return self.aws, self.ssh

    def close(self):
        if self._ssh is not None:
            self._ssh.close_all()
        if self._engine is not None:
            self._engine.dispose()
