/* The one pass over every element that numpy cannot fuse: with one multiplier, v over a box
 * [lo, hi] of every element, what it decides, and what validation needs of the same read.
 *
 * For each j of a block, v_j(lambda) = s0_j + lambda s1_j at the box's two corners:
 *
 *     high_j = max(s0_j + lo s1_j, s0_j + hi s1_j),    low_j = min(s0_j + lo s1_j, s0_j + hi s1_j)
 *
 * (v at hi and at lo where s1_j >= 0 and lo >= 0), in the floating-point operations numpy uses
 * (a product, then a sum; no fused multiply-add, see setup.py), so that every finite number is
 * the one copslp._screening.box_extremes gives. An element reaches when high_j >= its level.
 *
 * reach:  the elements that reach, with s0_j, s1_j (float64) and high_j (the streamed passes,
 *         copslp._passes, decide the rest in numpy);
 * screen: the decision itself (copslp._screening._screen_streamed_one_bound): the positions
 *         with low_j > one_level (fixed to 1) and the sums of their scores, the positions and
 *         scores of the other elements that reach (the survivors), the counts that verify the
 *         levels, and with floors the count per group of those whose low_j reaches the level.
 *
 * Both sum high over the block (finite only if every entry is) and, when asked, gather the
 * s1_j at or above a candidate level, in their own dtype and in order (the candidates of
 * T_k(s1)). Numbers made from non-finite entries are not specified beyond a non-finite total.
 */
#define PY_SSIZE_T_CLEAN
#include <Python.h>
#include <math.h>
#include <stdint.h>
#include <string.h>

typedef struct {
    Py_buffer view;
    int held;
} Held;

static void release(Held *held, int count)
{
    for (int i = 0; i < count; i++) {
        if (held[i].held) {
            PyBuffer_Release(&held[i].view);
            held[i].held = 0;
        }
    }
}

/* 'd' / 'f' / 'i' (an 8-byte integer), native order (the formats numpy gives its own arrays). */
static char kind_of(const Py_buffer *view)
{
    const char *format = view->format == NULL ? "B" : view->format;
    if (format[0] == '=' || format[0] == '@') format++;
    if (format[0] == '\0' || format[1] != '\0') return '?';
    if (format[0] == 'd' && view->itemsize == 8) return 'd';
    if (format[0] == 'f' && view->itemsize == 4) return 'f';
    if ((format[0] == 'q' || format[0] == 'l') && view->itemsize == 8) return 'i';
    return '?';
}

/* A one-dimensional buffer of kind `want` (0: float64 or float32) and `length` elements
 * (exactly, or at least where !exact); outputs writable and contiguous, every buffer strided
 * by whole elements. Errors name the argument. */
static int take_buffer(PyObject *object, Held *held, int output, const char *name, char want,
                       Py_ssize_t length, int exact)
{
    if (PyObject_GetBuffer(object, &held->view, output ? PyBUF_RECORDS : PyBUF_RECORDS_RO) != 0) {
        PyObject *type, *value, *traceback;  /* numpy's words, with the name */
        PyErr_Fetch(&type, &value, &traceback);
        PyErr_Format(type == NULL ? PyExc_TypeError : type, "%s: %S", name, value == NULL ? Py_None : value);
        Py_XDECREF(type);
        Py_XDECREF(value);
        Py_XDECREF(traceback);
        return -1;
    }
    held->held = 1;
    const char *format = held->view.format == NULL ? "B" : held->view.format;
    char kind = kind_of(&held->view);
    if (held->view.ndim != 1) {
        PyErr_Format(PyExc_ValueError, "%s must be one-dimensional, got %d dimensions", name, held->view.ndim);
        return -1;
    }
    if (want != 0 && kind != want) {
        PyErr_Format(PyExc_TypeError, "%s has format '%s', expected '%c'", name, format, want == 'i' ? 'q' : want);
        return -1;
    }
    if (want == 0 && kind != 'd' && kind != 'f') {
        PyErr_Format(PyExc_TypeError, "%s has format '%s', expected float64 or float32", name, format);
        return -1;
    }
    Py_ssize_t have = held->view.shape[0];
    if ((exact && have != length) || (!exact && have < length)) {
        PyErr_Format(PyExc_ValueError, "%s has length %zd, needs %s%zd", name, have, exact ? "" : "at least ",
                     length);
        return -1;
    }
    if (held->view.strides[0] % held->view.itemsize != 0) {
        PyErr_Format(PyExc_ValueError, "%s must be strided by whole elements", name);
        return -1;
    }
    if (output && !PyBuffer_IsContiguous(&held->view, 'C')) {
        PyErr_Format(PyExc_ValueError, "%s must be contiguous", name);
        return -1;
    }
    return 0;
}

static Py_ssize_t step_of(const Held *held)
{
    return held->held ? held->view.strides[0] / held->view.itemsize : 0;
}

/* What both loops read: the two rows (float64 or float32, with a step of whole elements), the
 * box, the level (one for all, or a float64 array of one per element) and the candidates. */
typedef struct {
    Held held[3]; /* s0, s1, the levels */
    Py_ssize_t n, step0, step1, step_level;
    char kind;
    double lo, hi, level, candidate_level;
    const double *levels;
} Rows;

static int take_rows(Rows *rows, PyObject *o0, PyObject *o1, PyObject *olevel)
{
    memset(rows->held, 0, sizeof(rows->held));
    if (take_buffer(o0, &rows->held[0], 0, "s0", 0, 0, 0) != 0) return -1;
    rows->n = rows->held[0].view.shape[0];
    rows->kind = kind_of(&rows->held[0].view);
    if (take_buffer(o1, &rows->held[1], 0, "s1", rows->kind, rows->n, 1) != 0) return -1;
    rows->levels = NULL;
    if (PyFloat_Check(olevel) || PyLong_Check(olevel)) {
        rows->level = PyFloat_AsDouble(olevel);
        if (rows->level == -1.0 && PyErr_Occurred()) return -1;
    } else {
        if (take_buffer(olevel, &rows->held[2], 0, "level", 'd', rows->n, 1) != 0) return -1;
        rows->levels = (const double *)rows->held[2].view.buf;
    }
    rows->step0 = step_of(&rows->held[0]);
    rows->step1 = step_of(&rows->held[1]);
    rows->step_level = step_of(&rows->held[2]);
    return 0;
}

/* v at the corners of element j into `high` and `low` (a, b: s0_j, s1_j as float64), with the
 * NaN of np.maximum and np.minimum; `monotone` is cleared where s1_j >= 0 fails. */
#define CORNERS(a, b, high, low)                                                                   \
    double high = (a) + (b) * hi, low;                                                               \
    if (lo_negative || !((b) >= 0.0)) {                                                              \
        monotone &= ((b) >= 0.0);                                                                    \
        double at_lo = (a) + (b) * lo;                                                               \
        low = (at_lo < high || at_lo != at_lo) ? at_lo : high;                                       \
        high = (at_lo > high || at_lo != at_lo) ? at_lo : high;                                      \
    } else {                                                                                         \
        low = (a) + (b) * lo;                                                                        \
    }

/* The loops: one function per dtype T, each with three bodies (levels one per element; one
 * level and contiguous rows, which the compiler then reads as such; one level and strided
 * rows). `restrict`: no output overlaps an input, so the loads run ahead of the stores. Two
 * running sums, so that the additions do not wait on each other. Every output is written at
 * its next free slot and the slot kept only when the element belongs there (no branch to
 * mispredict). */
#define FOR_EACH_LAYOUT(BODY, T)                                                                   \
    if (levels != NULL)                                                                              \
        BODY(T, step0, step1, levels[j * step_level])                                                \
    else if (step0 == 1 && step1 == 1)                                                               \
        BODY(T, 1, 1, level)                                                                         \
    else                                                                                             \
        BODY(T, step0, step1, level)

#define READ_ELEMENT(T, STEP0, STEP1)                                                              \
    T raw1 = s1[j * (STEP1)];                                                                        \
    double a = (double)s0[j * (STEP0)], b = (double)raw1;                                            \
    CORNERS(a, b, high, low)                                                                         \
    if (j & 1) odd += high; else even += high;                                                       \
    if (candidates != NULL) {                                                                        \
        candidates[c] = raw1;                                                                        \
        c += (b >= candidate_level);                                                                 \
    }

#define REACH_BODY(T, STEP0, STEP1, LEVEL)                                                          \
    for (Py_ssize_t j = 0; j < n; j++) {                                                             \
        READ_ELEMENT(T, STEP0, STEP1)                                                                \
        (void)low;                                                                                   \
        positions[m] = (int64_t)j;                                                                   \
        column0[m] = a;                                                                              \
        column1[m] = b;                                                                              \
        highs[m] = high;                                                                             \
        m += (high >= (LEVEL));                                                                      \
    }

#define REACH_LOOP(NAME, T)                                                                        \
    static Py_ssize_t NAME(const T *restrict s0, Py_ssize_t step0, const T *restrict s1,             \
                           Py_ssize_t step1, Py_ssize_t n, double lo, double hi, double level,       \
                           const double *restrict levels, Py_ssize_t step_level,                     \
                           double candidate_level, T *restrict candidates, Py_ssize_t *found,        \
                           double *total, int *all_monotone, int64_t *restrict positions,            \
                           double *restrict column0, double *restrict column1,                       \
                           double *restrict highs)                                                   \
    {                                                                                                \
        Py_ssize_t m = 0, c = 0;                                                                     \
        double even = 0.0, odd = 0.0;                                                                \
        int lo_negative = !(lo >= 0.0), monotone = 1;                                                \
        FOR_EACH_LAYOUT(REACH_BODY, T)                                                               \
        *found = c;                                                                                  \
        *total = even + odd;                                                                         \
        *all_monotone = !lo_negative && monotone;                                                    \
        return m;                                                                                    \
    }

REACH_LOOP(reach_float64, double)
REACH_LOOP(reach_float32, float)

/* The reach loop of the rows' dtype (no Python calls: runs without the GIL). */
static Py_ssize_t reach_rows(const Rows *rows, void *candidates, Py_ssize_t *found, double *total, int *monotone,
                             int64_t *positions, double *column0, double *column1, double *highs)
{
    if (rows->kind == 'd')
        return reach_float64(rows->held[0].view.buf, rows->step0, rows->held[1].view.buf, rows->step1, rows->n,
                             rows->lo, rows->hi, rows->level, rows->levels, rows->step_level, rows->candidate_level,
                             candidates, found, total, monotone, positions, column0, column1, highs);
    return reach_float32(rows->held[0].view.buf, rows->step0, rows->held[1].view.buf, rows->step1, rows->n, rows->lo,
                         rows->hi, rows->level, rows->levels, rows->step_level, rows->candidate_level, candidates,
                         found, total, monotone, positions, column0, column1, highs);
}

static PyObject *reach(PyObject *Py_UNUSED(self), PyObject *args)
{
    PyObject *o0, *o1, *olevel, *opositions, *ocolumn0, *ocolumn1, *ohigh, *ocandidates;
    Rows rows;
    if (!PyArg_ParseTuple(args, "OOddOdOOOOO:reach", &o0, &o1, &rows.lo, &rows.hi, &olevel,
                          &rows.candidate_level, &opositions, &ocolumn0, &ocolumn1, &ohigh, &ocandidates))
        return NULL;
    Held held[5];
    memset(held, 0, sizeof(held));
    PyObject *result = NULL;
    if (take_rows(&rows, o0, o1, olevel) != 0) goto done;
    Py_ssize_t n = rows.n;
    if (take_buffer(opositions, &held[0], 1, "positions", 'i', n, 0) != 0) goto done;
    if (take_buffer(ocolumn0, &held[1], 1, "column0", 'd', n, 0) != 0) goto done;
    if (take_buffer(ocolumn1, &held[2], 1, "column1", 'd', n, 0) != 0) goto done;
    if (take_buffer(ohigh, &held[3], 1, "high", 'd', n, 0) != 0) goto done;
    if (ocandidates != Py_None && take_buffer(ocandidates, &held[4], 1, "candidates", rows.kind, n, 0) != 0)
        goto done;
    void *candidates = held[4].held ? held[4].view.buf : NULL;
    Py_ssize_t m, found = 0;
    double total;
    int monotone;
    Py_BEGIN_ALLOW_THREADS
    m = reach_rows(&rows, candidates, &found, &total, &monotone, held[0].view.buf, held[1].view.buf,
                   held[2].view.buf, held[3].view.buf);
    Py_END_ALLOW_THREADS
    result = Py_BuildValue("nndO", m, found, total, monotone ? Py_True : Py_False);
done:
    release(rows.held, 3);
    release(held, 5);
    return result;
}

/* The decision on what reached (a block's first `m` entries of positions, column0, column1,
 * highs, in cache after the reach loop): low again (v at the corners, as CORNERS), the counts,
 * the elements fixed to 1 into `ones` (their positions plus offset) and the sums of their
 * scores, the others compacted in place at the front of positions, column0, column1 (plus
 * offset). With `support`, the count per group of the elements whose low reaches their level;
 * the group is `group`, or `groups[j]` per element. Returns -1 (and the group in *bad) for a
 * group outside [0, n_groups). */
static int decide(Py_ssize_t m, double lo, double hi, double level, const double *levels,
                  Py_ssize_t step_level, double one_level, double zero_level, int64_t offset, int64_t group,
                  const int64_t *groups, Py_ssize_t step_group, int64_t *support, Py_ssize_t n_groups,
                  int64_t *restrict positions, double *restrict column0, double *restrict column1,
                  const double *restrict highs, int64_t *restrict ones, Py_ssize_t *counts, double *taken,
                  int64_t *bad)
{
    Py_ssize_t o = 0, s = 0, above_one = 0, at_or_above_zero = 0;
    double taken0 = 0.0, taken1 = 0.0;
    int lo_negative = !(lo >= 0.0), monotone = 1;
    for (Py_ssize_t i = 0; i < m; i++) {
        int64_t j = positions[i];
        double a = column0[i], b = column1[i];
        CORNERS(a, b, at_hi, low)
        (void)at_hi;
        double high = highs[i];
        above_one += high > one_level;
        at_or_above_zero += low >= zero_level;
        if (support != NULL) {
            int64_t g = groups == NULL ? group : groups[j * step_group];
            if ((uint64_t)g >= (uint64_t)n_groups) {
                *bad = g;
                return -1;
            }
            support[g] += low >= (levels == NULL ? level : levels[j * step_level]);
        }
        if (low > one_level) {
            ones[o++] = offset + j;
            taken0 += a;
            taken1 += b;
        } else {
            positions[s] = offset + j;
            column0[s] = a;
            column1[s] = b;
            s++;
        }
    }
    (void)monotone;
    counts[0] = o;
    counts[1] = s;
    counts[2] = above_one;
    counts[3] = at_or_above_zero;
    taken[0] = taken0;
    taken[1] = taken1;
    return 0;
}

static PyObject *screen(PyObject *Py_UNUSED(self), PyObject *args)
{
    PyObject *o0, *o1, *olevel, *ogroups, *osupport, *opositions, *ocolumn0, *ocolumn1, *ohigh, *oones,
        *ocandidates;
    Rows rows;
    double one_level, zero_level;
    long long offset;
    if (!PyArg_ParseTuple(args, "OOddOdddLOOOOOOOO:screen", &o0, &o1, &rows.lo, &rows.hi, &olevel,
                          &rows.candidate_level, &one_level, &zero_level, &offset, &ogroups, &osupport,
                          &opositions, &ocolumn0, &ocolumn1, &ohigh, &oones, &ocandidates))
        return NULL;
    Held held[8];
    memset(held, 0, sizeof(held));
    PyObject *result = NULL;
    if (take_rows(&rows, o0, o1, olevel) != 0) goto done;
    Py_ssize_t n = rows.n, n_groups = 0;
    int64_t group = 0;
    const int64_t *groups = NULL;
    int64_t *support = NULL;
    if (osupport != Py_None) {
        if (take_buffer(osupport, &held[0], 1, "support", 'i', 0, 0) != 0) goto done;
        support = held[0].view.buf;
        n_groups = held[0].view.shape[0];
        if (PyLong_Check(ogroups)) {
            group = PyLong_AsLongLong(ogroups);
            if (group == -1 && PyErr_Occurred()) goto done;
        } else {
            if (take_buffer(ogroups, &held[1], 0, "groups", 'i', n, 1) != 0) goto done;
            groups = held[1].view.buf;
        }
    }
    if (take_buffer(opositions, &held[2], 1, "positions", 'i', n, 0) != 0) goto done;
    if (take_buffer(ocolumn0, &held[3], 1, "column0", 'd', n, 0) != 0) goto done;
    if (take_buffer(ocolumn1, &held[4], 1, "column1", 'd', n, 0) != 0) goto done;
    if (take_buffer(ohigh, &held[5], 1, "high", 'd', n, 0) != 0) goto done;
    if (take_buffer(oones, &held[6], 1, "ones", 'i', n, 0) != 0) goto done;
    if (ocandidates != Py_None && take_buffer(ocandidates, &held[7], 1, "candidates", rows.kind, n, 0) != 0)
        goto done;
    void *candidates = held[7].held ? held[7].view.buf : NULL;
    Py_ssize_t m, found = 0, counts[4];
    double total, taken[2];
    int64_t bad = 0;
    int monotone, status;
    Py_BEGIN_ALLOW_THREADS
    m = reach_rows(&rows, candidates, &found, &total, &monotone, held[2].view.buf, held[3].view.buf,
                   held[4].view.buf, held[5].view.buf);
    status = decide(m, rows.lo, rows.hi, rows.level, rows.levels, rows.step_level, one_level, zero_level, offset,
                    group, groups, step_of(&held[1]), support, n_groups, held[2].view.buf, held[3].view.buf,
                    held[4].view.buf, held[5].view.buf, held[6].view.buf, counts, taken, &bad);
    Py_END_ALLOW_THREADS
    if (status != 0) {
        PyErr_Format(PyExc_ValueError, "groups holds %lld, outside [0, %zd) (the length of support)",
                     (long long)bad, n_groups);
        goto done;
    }
    result = Py_BuildValue("nnnnnddd", counts[0], counts[1], counts[2], counts[3], found, taken[0], taken[1],
                           total);
done:
    release(rows.held, 3);
    release(held, 8);
    return result;
}

static PyMethodDef methods[] = {
    {"reach", reach, METH_VARARGS,
     "reach(s0, s1, lo, hi, level, candidate_level, positions, column0, column1, high, candidates)\n"
     "    -> (count, candidate_count, total, monotone)\n\n"
     "The elements whose largest v over [lo, hi] (v = s0 + lambda s1) is at or above their level\n"
     "(a number, or a float64 array of one per element): their positions, s0, s1 (float64) and\n"
     "largest v in the first `count` entries of the output buffers; the total of the largest v over\n"
     "the block; the entries of s1 at or above candidate_level in `candidates` (None: not gathered);\n"
     "and whether lo >= 0 and s1 >= 0 throughout (then v at lo is the smallest).\n"
     "See copslp._screening.reaching_extremes."},
    {"screen", screen, METH_VARARGS,
     "screen(s0, s1, lo, hi, level, candidate_level, one_level, zero_level, offset, groups, support,\n"
     "       positions, column0, column1, high, ones, candidates)\n"
     "    -> (n_ones, n_survivors, above_one, at_or_above_zero, candidate_count, taken0, taken1, total)\n\n"
     "One block's screening with one multiplier: among the elements whose largest v over [lo, hi]\n"
     "reaches their level, those whose smallest v exceeds one_level (their positions plus offset in\n"
     "`ones`, the sums of their s0 and s1 in taken0, taken1) and the others (positions plus offset in\n"
     "`positions`, s0 and s1 in column0, column1; `high` is scratch); how many of them have their\n"
     "largest v above one_level and their smallest at or above zero_level; with `support` (int64,\n"
     "one per group),\n"
     "the count per group of those whose smallest v reaches their level, the group being `groups`\n"
     "(one for the block, or an int64 array of one per element). The total and the candidates as\n"
     "in reach. See copslp._screening._screen_streamed_one_bound."},
    {NULL, NULL, 0, NULL}};

static struct PyModuleDef module = {PyModuleDef_HEAD_INIT, "_kernels",
                                    "The fused screening pass of one multiplier.", -1, methods,
                                    NULL, NULL, NULL, NULL};

PyMODINIT_FUNC PyInit__kernels(void) { return PyModule_Create(&module); }
