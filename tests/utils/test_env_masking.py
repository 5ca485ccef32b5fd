"""Secret-looking environment variables are masked in VISSL's environment dump."""
import logging

import pytest

from vissl_ext.utils.env_masking import MASK, is_secret_name, masked_env


@pytest.mark.parametrize("name", ["MY_API_TOKEN", "AWS_SECRET_ACCESS_KEY", "aws_access_key_id", "DB_PASSWORD",
                                  "FTP_PASSWD", "GOOGLE_APPLICATION_CREDENTIALS", "HF_AUTH", "SESSION_COOKIE",
                                  "SSH_PRIVATE", "XDG_SESSION_ID", "Github_Token"])
def test_secret_names(name):
    assert is_secret_name(name)


@pytest.mark.parametrize("name", ["PATH", "HOME", "CUDA_VISIBLE_DEVICES", "RANK", "MASTER_ADDR", "OMP_NUM_THREADS"])
def test_plain_names(name):
    assert not is_secret_name(name)


def test_masked_env_keeps_names_and_plain_values():
    env = {"PATH": "/usr/bin", "MY_API_TOKEN": "tok-123", "aws_secret_access_key": "s3cr3t"}
    assert masked_env(env) == {"PATH": "/usr/bin", "MY_API_TOKEN": MASK, "aws_secret_access_key": MASK}
    assert env["MY_API_TOKEN"] == "tok-123"  # the caller's mapping is untouched


def test_vissl_env_dump_is_masked(caplog):
    """The function VISSL's train / extract engines call (patched by `import vissl_ext`)."""
    import vissl.engines.train as train_engine
    import vissl.utils.env as vissl_env

    assert train_engine.print_system_env_info is vissl_env.print_system_env_info
    with caplog.at_level(logging.INFO):
        train_engine.print_system_env_info({"MY_API_TOKEN": "tok-4711", "HOME": "/home/u"})
    assert "tok-4711" not in caplog.text
    assert f"MY_API_TOKEN:\t{MASK}" in caplog.text and "HOME:\t/home/u" in caplog.text
