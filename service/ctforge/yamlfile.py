"""Reading the project's YAML files strictly: a key given twice is an error, not a silent overwrite.

Ansible's own tags (`!unsafe`, `!vault`) load as their plain value, so role files read here too.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import yaml

from ctforge import messages


class DuplicateKeyError(yaml.YAMLError):
    """A mapping names one key twice; YAML loaders otherwise keep the last silently."""


class _StrictLoader(yaml.SafeLoader):
    def construct_mapping(self, node: yaml.MappingNode, deep: bool = False) -> dict[Any, Any]:
        self.flatten_mapping(node)  # resolve `<<:` merges first, so only literal repeats count
        seen: set[Any] = set()
        for key_node, _ in node.value:
            key = self.construct_object(key_node, deep=deep)
            if key in seen:
                raise DuplicateKeyError(
                    messages.STACK_FILE_DUPLICATE_KEY.format(key=key, line=key_node.start_mark.line + 1)
                )
            seen.add(key)
        return super().construct_mapping(node, deep=deep)


def _ansible_tag(loader: yaml.SafeLoader, _suffix: str, node: yaml.Node) -> Any:
    if isinstance(node, yaml.ScalarNode):
        return loader.construct_scalar(node)
    if isinstance(node, yaml.SequenceNode):
        return loader.construct_sequence(node)
    return loader.construct_mapping(node)


_StrictLoader.add_multi_constructor("!", _ansible_tag)


def load_yaml(path: Path) -> Any:
    """The document in `path`; raises OSError or yaml.YAMLError (DuplicateKeyError included)."""
    return yaml.load(path.read_text(encoding="utf-8"), Loader=_StrictLoader)  # a SafeLoader subclass
