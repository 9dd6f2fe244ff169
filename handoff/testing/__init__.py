"""Tools to test flows: a scripted LLM (more to come: strategies, model-based tests)."""

from .scripted import Reply, ScriptedLLM, ScriptExhausted, ToolCall, Turn, call, fail

__all__ = ["Reply", "ScriptExhausted", "ScriptedLLM", "ToolCall", "Turn", "call", "fail"]
