"""Inputs declared in YAML (inputs/*.yml): any landing export or warehouse table as a CDP source."""

from orchestration.inputs.model import (
    INPUTS_DIR_ENV,
    InputDeclaration,
    InputError,
    LoadedInput,
    declared_inputs,
    inputs_dir,
    load_inputs,
    validate_inputs,
)

__all__ = ["INPUTS_DIR_ENV", "InputDeclaration", "InputError", "LoadedInput", "declared_inputs",
           "inputs_dir", "load_inputs", "validate_inputs"]
