"""Data: reading and checking labelled structures, neighbour lists, graphs and batches."""
from .graph import Batch, Graph, collate, to_graph
from .io import DataError, Labelled, read_structures

__all__ = ["Batch", "Graph", "collate", "to_graph", "DataError", "Labelled", "read_structures"]
