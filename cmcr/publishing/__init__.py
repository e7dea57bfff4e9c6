"""Putting spaces where others can use them: model cards (`card`) and Hub-ready folders (`export`)."""
