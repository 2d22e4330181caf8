"""Retrieval for file_search: text extraction, chunking and search over vector stores."""
