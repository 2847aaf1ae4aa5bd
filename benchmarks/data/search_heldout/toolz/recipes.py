import itertools
from .itertoolz import frequencies, pluck, getter


__all__ = ('countby', 'partitionby')


def countby(key, seq):
    if not callable(key):
        key = getter(key)
    return frequencies(map(key, seq))


def partitionby(func, seq):
    return map(tuple, pluck(1, itertools.groupby(seq, key=func)))
