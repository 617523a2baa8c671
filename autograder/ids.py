"""Student ids: which folder names can be one, and which ids may be one person."""
import unicodedata


def id_problem(name):
    """Why a student folder's name cannot be a student id, in words; None if it can.

    Ids are data: any other character is graded as it is (nbgrader sees it escaped,
    see :meth:`autograder.session.CourseAPI.autograde`).
    """
    if any(unicodedata.category(c) == "Cc" for c in name):
        return "its name holds a control character (a newline, a tab, an escape)"
    if name != name.strip():
        return "its name begins or ends with a space"
    try:
        name.encode("utf-8")
    except UnicodeEncodeError:
        return "its name is not valid UTF-8"
    return None


def student_id(name):
    """The student id of a folder name: Unicode NFC (a name typed on one system, zipped on another)."""
    return unicodedata.normalize("NFC", name)


def same_person(student_id):
    """What two ids of one person have in common: Unicode NFC, case folded (``Ana``, ``ana``)."""
    return unicodedata.normalize("NFC", student_id).casefold()
