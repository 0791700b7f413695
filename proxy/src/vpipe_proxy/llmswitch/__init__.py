"""llmswitch: conversion between what a client speaks and what a provider speaks.

Converters are named `<client>_<provider>` and are pure (request and response functions) or
sans-IO (stream converters fed bytes). A feature the target protocol cannot express is a 400
naming the field, never silently dropped.
"""
