"""Documentation follows the code: every config key is documented, the README shows the two commands."""

from conftest import REPO
from gan_style.methods import every_config_key


def test_every_config_key_is_in_the_readme():
    readme = (REPO / "README.md").read_text()
    missing = [key for key, *_ in every_config_key() if f"`{key}`" not in readme]
    assert not missing, f"README.md does not document: {missing}"


def test_readme_starts_with_the_two_commands():
    readme = (REPO / "README.md").read_text()
    first_block = readme.split("```")[1]
    assert "make train DOMAIN=monet" in first_block and "make test" in first_block


def test_every_config_key_has_a_description():
    assert [key for key, _, desc, _ in every_config_key() if not desc] == []
