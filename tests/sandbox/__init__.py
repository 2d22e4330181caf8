"""The code_interpreter sandbox's own tests (issue 17): each asserts that it holds."""
