"""Settings precedence: defaults < settings file < AMS_* environment."""

import os

import pytest

from amslib.core.errors import ConfigError
from amslib.core.settings import DEFAULTS, load_settings, settings_path

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


@pytest.fixture
def home(tmp_path, monkeypatch):
    monkeypatch.setenv("HOME", str(tmp_path))
    return tmp_path


def write(path, text):
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)
    return path


def test_no_file_gives_defaults_and_sqlite_in_home(home):
    settings = load_settings(environ={})
    assert settings.source is None
    assert settings.SSH_PORT == 22
    assert settings.db_url == f"sqlite:///{home}/.ams/ams.db"


def test_home_file_is_read(home):
    write(home / ".ams" / "settings.py", "SSH_PORT = 2222\nDB_URL = 'sqlite:////x.db'\n")
    settings = load_settings(environ={})
    assert settings.source == str(home / ".ams" / "settings.py")
    assert settings.SSH_PORT == 2222
    assert settings.db_url == "sqlite:////x.db"


def test_ams_settings_variable_wins_over_home_file(home, tmp_path):
    write(home / ".ams" / "settings.py", "SSH_PORT = 2222\n")
    explicit = write(tmp_path / "elsewhere" / "s.py", "SSH_PORT = 3333\n")
    settings = load_settings(environ={"AMS_SETTINGS": str(explicit)})
    assert settings.SSH_PORT == 3333


def test_environment_wins_over_file_and_is_typed(home):
    write(home / ".ams" / "settings.py", "SSH_PORT = 2222\nSSH_USE_AGENT = True\nAWS_REGIONS = ['x']\n")
    settings = load_settings(
        environ={
            "AMS_SSH_PORT": "4444",
            "AMS_SSH_USE_AGENT": "no",
            "AMS_AWS_REGIONS": "us-east-1, eu-west-1",
            "AMS_SSH_CONNECT_TIMEOUT": "2.5",
            "AMS_DB_URL": "mysql+pymysql://u:p@h/db",
            "AMS_SUDO_PASSWORD": "pw",
        }
    )
    assert settings.SSH_PORT == 4444
    assert settings.SSH_USE_AGENT is False
    assert settings.AWS_REGIONS == ["us-east-1", "eu-west-1"]
    assert settings.SSH_CONNECT_TIMEOUT == 2.5
    assert settings.db_url == "mysql+pymysql://u:p@h/db"
    assert settings.SUDO_PASSWORD == "pw"


def test_system_file_is_the_last_resort(home, tmp_path, monkeypatch):
    import amslib.core.settings as settings_module

    system = write(tmp_path / "etc" / "settings.py", "SSH_PORT = 1111\n")
    monkeypatch.setattr(settings_module, "SYSTEM_SETTINGS_PATH", str(system))
    assert load_settings(environ={}).SSH_PORT == 1111
    write(home / ".ams" / "settings.py", "SSH_PORT = 2222\n")
    assert settings_path({}) == str(home / ".ams" / "settings.py")
    assert load_settings(environ={}).SSH_PORT == 2222


@pytest.mark.parametrize(
    "name,value,fragment",
    [
        ("AMS_SSH_PORT", "twenty", "AMS_SSH_PORT must be a whole number"),
        ("AMS_SSH_USE_AGENT", "maybe", "AMS_SSH_USE_AGENT must be true or false"),
        ("AMS_SSH_CONNECT_TIMEOUT", "soon", "AMS_SSH_CONNECT_TIMEOUT must be a number"),
        ("AMS_SSH_HOST_KEY_POLICY", "trusting", "SSH_HOST_KEY_POLICY must be"),
    ],
)
def test_bad_environment_values_are_config_errors(home, name, value, fragment):
    with pytest.raises(ConfigError, match=fragment):
        load_settings(environ={name: value})


def test_missing_explicit_file_is_an_error(home):
    with pytest.raises(ConfigError, match="not a file"):
        load_settings(environ={"AMS_SETTINGS": str(home / "nope.py")})


def test_broken_settings_file_is_one_clear_error(home):
    write(home / ".ams" / "settings.py", "SSH_PORT = = 3\n")
    with pytest.raises(ConfigError, match="cannot read settings file"):
        load_settings(environ={})


def test_secrets_are_masked_in_as_dict(home):
    settings = load_settings(environ={"AMS_SUDO_PASSWORD": "hunter2", "AMS_SSH_PASSWORD": "pw2"})
    shown = settings.as_dict()
    assert "hunter2" not in repr(shown) and "pw2" not in repr(shown)
    assert shown["SUDO_PASSWORD"] == "********"


def test_sample_settings_documents_every_setting():
    namespace = {}
    with open(os.path.join(ROOT, "sample_settings.py")) as handle:
        exec(handle.read(), namespace)
    assert set(DEFAULTS) <= set(namespace), set(DEFAULTS) - set(namespace)
    for name in DEFAULTS:
        assert namespace[name] == DEFAULTS[name], name


# -- values in the settings file are typed like AMS_* variables (issue 11) ----------------------


def load_file(home, text, mode=0o600, **kwargs):
    path = write(home / ".ams" / "settings.py", text)
    os.chmod(path, mode)
    return load_settings(environ={}, **kwargs), path


@pytest.mark.parametrize(
    "line,fragment",
    [
        ('DEVICE_TIMEOUT = "abc"', "DEVICE_TIMEOUT must be a number, not 'abc' (str)"),
        ("SCHEDULE_WORKERS = 2.5", "SCHEDULE_WORKERS must be a whole number, not 2.5 (float)"),
        ("SSH_PORT = '22'", "SSH_PORT must be a whole number, not '22' (str)"),
        ("SSH_PORT = True", "SSH_PORT must be a whole number, not True (bool)"),
        ("SSH_USE_AGENT = 'no'", "SSH_USE_AGENT must be true or false (True/False), not 'no' (str)"),
        ("SSH_USE_AGENT = 1", "SSH_USE_AGENT must be true or false (True/False), not 1 (int)"),
        ("AWS_REGIONS = 3", "AWS_REGIONS must be a list of strings such as ['us-east-1', 'eu-west-1'], not 3 (int)"),
        ("AWS_REGIONS = 'us-east-1'", "AWS_REGIONS must be a list of strings"),
        ("AWS_REGIONS = ['us-east-1', 2]", "AWS_REGIONS must be a list of strings"),
        ("SSH_USER = 42", "SSH_USER must be a string or None, not 42 (int)"),
        ("AWS_DEFAULT_REGION = None", "AWS_DEFAULT_REGION must be a string, not None (NoneType)"),
    ],
)
def test_wrong_types_in_the_file_are_one_config_error_naming_file_and_setting(home, line, fragment):
    path = write(home / ".ams" / "settings.py", line + "\n")
    with pytest.raises(ConfigError) as caught:
        load_settings(environ={})
    message = str(caught.value)
    assert message.startswith(f"settings file {path}: ")
    assert fragment in message
    assert "\n" not in message
    assert caught.value.exit_code == 9


def test_good_file_values_are_normalised(home):
    settings, _ = load_file(
        home,
        "import pathlib\n"
        "DEVICE_TIMEOUT = 30\n"  # an int where a float is expected
        "AWS_REGIONS = ('us-east-1', 'eu-west-1')\n"
        "LOG_FILE = pathlib.Path('/var/log/ams.log')\n"
        "SSH_KEYFILE = None\n"
        "SSH_USE_AGENT = False\n",
    )
    assert settings.DEVICE_TIMEOUT == 30.0 and isinstance(settings.DEVICE_TIMEOUT, float)
    assert settings.AWS_REGIONS == ["us-east-1", "eu-west-1"]
    assert settings.LOG_FILE == "/var/log/ams.log"
    assert settings.SSH_USE_AGENT is False


def test_a_wrong_type_of_a_secret_never_shows_the_value(home):
    write(home / ".ams" / "settings.py", "SUDO_PASSWORD = 12345678\nDB_URL = b'mysql://u:hunter2@h/db'\n")
    with pytest.raises(ConfigError) as caught:
        load_settings(environ={})
    assert "SUDO_PASSWORD must be a string or None, not a value of type int" in str(caught.value)
    assert "12345678" not in str(caught.value)
    write(home / ".ams" / "settings.py", "DB_URL = b'mysql://u:hunter2@h/db'\n")
    with pytest.raises(ConfigError) as caught:
        load_settings(environ={})
    assert "DB_URL must be a string or None" in str(caught.value) and "hunter2" not in str(caught.value)


def test_the_environment_still_wins_over_a_well_typed_file(home):
    write(home / ".ams" / "settings.py", "SCHEDULE_WORKERS = 2\n")
    assert load_settings(environ={"AMS_SCHEDULE_WORKERS": "7"}).SCHEDULE_WORKERS == 7


def test_a_misspelt_setting_is_an_error_with_a_suggestion(home):
    path = write(home / ".ams" / "settings.py", "SSH_PORT = 2222\nSSH_USRE = 'admin'\n")
    with pytest.raises(ConfigError) as caught:
        load_settings(environ={})
    message = str(caught.value)
    assert message == (f"settings file {path}: unknown setting SSH_USRE; did you mean SSH_USER? "
                       "(names of your own must be lower case or start with _)")
    assert "\n" not in message and "admin" not in message


def test_an_unknown_setting_far_from_any_name_is_still_an_error(home):
    write(home / ".ams" / "settings.py", "ZZZ_QQQ = 1\n")
    with pytest.raises(ConfigError, match="unknown setting ZZZ_QQQ; sample_settings.py lists the known ones"):
        load_settings(environ={})


def test_lower_case_private_and_imported_names_are_ignored(home):
    settings, _ = load_file(
        home,
        "import os\n"
        "import os.path as osp\n"
        "from stat import S_IRUSR\n"
        "from os import SEEK_SET as SEEK_FROM_START\n"
        "base = '/srv/ams'\n"
        "_PRIVATE_HELPER = 3\n"
        "def helper():\n    return 1\n"
        "LOG_FILE = os.path.join(base, 'ams.log')\n",
    )
    assert settings.LOG_FILE == "/srv/ams/ams.log"


def test_cli_reports_a_bad_settings_file_on_one_line_with_exit_9(home, monkeypatch, capsys):
    from amslib.cli.main import main

    path = write(home / ".ams" / "settings.py", "SCHEDULE_WORKERS = 2.5\n")
    for name in list(os.environ):
        if name.startswith("AMS_"):
            monkeypatch.delenv(name)
    code = main(["host", "list"])
    err = capsys.readouterr().err
    assert code == 9
    assert err == f"ams: error: settings file {path}: SCHEDULE_WORKERS must be a whole number, not 2.5 (float)\n"


# -- a settings file holding secrets must not be readable by others (issue 11) -----------------


@pytest.mark.parametrize(
    "text,names",
    [
        ("SSH_PASSWORD = 'hunter2'\n", "SSH_PASSWORD"),
        ("SUDO_PASSWORD = 'hunter2'\n", "SUDO_PASSWORD"),
        ("AWS_SECRET_ACCESS_KEY = 'hunter2'\n", "AWS_SECRET_ACCESS_KEY"),
        ("SSH_KEY_PASSPHRASE = 'hunter2'\n", "SSH_KEY_PASSPHRASE"),
        ("DB_URL = 'mysql+pymysql://ams:hunter2@db/ams'\n", "DB_URL"),
        ("DB_URL = 'mysql+pymysql://ams:hunter2@db/ams'\nSUDO_PASSWORD = 'hunter2'\n", "DB_URL, SUDO_PASSWORD"),
    ],
)
@pytest.mark.parametrize("mode", [0o644, 0o640, 0o604])
def test_a_readable_file_with_secrets_warns_once_without_the_secret(home, capsys, monkeypatch, text, names, mode):
    monkeypatch.delenv("_ARGCOMPLETE", raising=False)
    _, path = load_file(home, text, mode)
    err = capsys.readouterr().err
    assert err.count("\n") == 1, err
    assert err.startswith(f"ams: warning: settings file {path} holds secrets ({names}) and can be read by ")
    assert f"chmod 600 {path}" in err
    assert "hunter2" not in err


@pytest.mark.parametrize(
    "text,mode",
    [
        ("SSH_PASSWORD = 'hunter2'\n", 0o600),
        ("SSH_PASSWORD = 'hunter2'\n", 0o400),
        ("SSH_PASSWORD = None\nSSH_PORT = 22\n", 0o644),  # no secret in it
        ("DB_URL = 'mysql+pymysql://ams@db/ams'\n", 0o644),  # no password in the URL
        ("DB_URL = 'sqlite:////var/lib/ams/ams.db'\n", 0o644),
    ],
)
def test_no_warning_for_a_private_file_or_one_without_secrets(home, capsys, text, mode):
    load_file(home, text, mode)
    assert capsys.readouterr().err == ""


def test_the_warning_can_be_collected_and_secrets_from_the_environment_do_not_count(home, capsys):
    warnings = []
    load_file(home, "SSH_PORT = 22\n", 0o644, warn=warnings.append)
    assert warnings == []
    os.chmod(home / ".ams" / "settings.py", 0o644)
    load_settings(environ={"AMS_SSH_PASSWORD": "hunter2"}, warn=warnings.append)
    assert warnings == []
    load_file(home, "SSH_PASSWORD = 'hunter2'\n", 0o644, warn=warnings.append)
    assert len(warnings) == 1 and "group and others" in warnings[0] and "mode 644" in warnings[0]
    assert capsys.readouterr().err == ""


def test_any_passphrase_or_password_setting_counts_as_secret():
    from amslib.core.settings import is_secret_name

    assert is_secret_name("SSH_KEY_PASSPHRASE") and is_secret_name("SMTP_PASSWORD")
    assert is_secret_name("AWS_SECRET_ACCESS_KEY") and not is_secret_name("SSH_KEYFILE")


def test_no_warning_during_shell_completion(home, capsys, monkeypatch):
    monkeypatch.setenv("_ARGCOMPLETE", "1")
    load_file(home, "SSH_PASSWORD = 'hunter2'\n", 0o644)
    assert capsys.readouterr().err == ""


def test_the_sample_settings_file_itself_is_accepted(home, capsys):
    settings = load_settings(environ={}, path=os.path.join(ROOT, "sample_settings.py"))
    assert settings.SSH_PORT == 22
    assert capsys.readouterr().err == ""
