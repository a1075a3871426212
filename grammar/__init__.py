"""The grammar of the .rlhf language, shipped as package data (rlhf.lark)."""
