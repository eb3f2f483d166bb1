"""Domain exception for reloc_ros' own failures."""


class RelocError(RuntimeError):
    """A failure of reloc_ros itself (bad bag content, missing data, ...).

    Bad arguments given by a user raise ``ValueError`` naming the bad value and
    what would be valid; ``RelocError`` is for everything that goes wrong while
    doing the work.
    """
