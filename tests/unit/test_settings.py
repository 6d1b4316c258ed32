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
