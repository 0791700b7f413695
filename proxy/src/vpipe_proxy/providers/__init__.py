"""Provider modules: the last stage of a chain, answering a call from an upstream or in-process."""
