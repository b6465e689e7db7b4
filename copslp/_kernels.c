/* The one pass over every element that numpy cannot fuse: v over a box of multipliers for every
 * element, what the box decides, and what validation needs of the same read.
 *
 * One multiplier: for each j of a block, v_j(lambda) = s0_j + lambda s1_j at the box's corners,
 *
 *     high_j = max(s0_j + lo s1_j, s0_j + hi s1_j),    low_j = min(s0_j + lo s1_j, s0_j + hi s1_j)
 *
 * (v at hi and at lo where s1_j >= 0 and lo >= 0), in the floating-point operations numpy uses
 * (a product, then a sum; no fused multiply-add, see setup.py), so that every finite number is
 * the one copslp._analytic.screening.box_extremes gives. Several multipliers: see screen_several. An
 * element reaches when high_j >= its level.
 *
 * reach:          the elements that reach, with s0_j, s1_j (float64) and high_j (the streamed
 *                 passes, copslp._analytic.passes, decide the rest in numpy);
 * screen,         the decision itself (copslp._analytic.screening.screen_piece): the positions with
 * screen_several: low_j > one_level (fixed to 1) and the sums of their scores, the positions
 *                 and scores of the other elements that reach (the survivors), the counts that
 *                 verify the levels, and with floors the count per group of those whose low_j
 *                 reaches their level.
 *
 * Each sums high over the block (finite only if every entry is) and, when asked, gathers the
 * entries of each secondary row at or above a candidate level, in their own dtype and in order
 * (the candidates of T_k(s_i)). Numbers made from non-finite entries are not specified beyond a
 * non-finite total.
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
        /* numpy's words, with the name */
#if PY_VERSION_HEX >= 0x030C0000
        PyObject *raised = PyErr_GetRaisedException();
        PyErr_Format(raised == NULL ? PyExc_TypeError : (PyObject *)Py_TYPE(raised), "%s: %S", name,
                     raised == NULL ? Py_None : raised);
        Py_XDECREF(raised);
#else
        PyObject *type, *value, *traceback;
        PyErr_Fetch(&type, &value, &traceback);
        PyErr_Format(type == NULL ? PyExc_TypeError : type, "%s: %S", name, value == NULL ? Py_None : value);
        Py_XDECREF(type);
        Py_XDECREF(value);
        Py_XDECREF(traceback);
#endif
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

/* A number rather than an array: a Python float or int, or a numpy scalar (no dimensions). */
static int is_number(PyObject *object)
{
    if (PyFloat_Check(object) || PyLong_Check(object)) return 1;
    if (!PyObject_CheckBuffer(object)) return 0;
    Py_buffer view;
    if (PyObject_GetBuffer(object, &view, PyBUF_RECORDS_RO) != 0) {
        PyErr_Clear();
        return 0;
    }
    int scalar = view.ndim == 0;
    PyBuffer_Release(&view);
    return scalar;
}

/* The level an element must reach: one number for all, or a float64 array of one per element. */
static int take_level(PyObject *olevel, Py_ssize_t n, Held *held, double *level, const double **levels)
{
    *levels = NULL;
    *level = 0.0;
    if (is_number(olevel)) {
        *level = PyFloat_AsDouble(olevel);
        return (*level == -1.0 && PyErr_Occurred()) ? -1 : 0;
    }
    if (take_buffer(olevel, held, 0, "level", 'd', n, 1) != 0) return -1;
    *levels = held->view.buf;
    return 0;
}

/* A box: lo_i <= hi_i, neither NaN. */
static int check_box(const double *lo, const double *hi, Py_ssize_t r)
{
    for (Py_ssize_t i = 0; i < r; i++) {
        if (!(lo[i] <= hi[i])) {
            char *low = PyOS_double_to_string(lo[i], 'r', 0, Py_DTSF_ADD_DOT_0, NULL);
            char *high = PyOS_double_to_string(hi[i], 'r', 0, Py_DTSF_ADD_DOT_0, NULL);
            if (low != NULL && high != NULL)
                PyErr_Format(PyExc_ValueError, "the box needs lo <= hi, got lo[%zd] = %s, hi[%zd] = %s", i, low, i,
                             high);
            else
                PyErr_NoMemory();
            PyMem_Free(low);
            PyMem_Free(high);
            return -1;
        }
    }
    return 0;
}

static int check_group(int64_t group, Py_ssize_t n_groups)
{
    if ((uint64_t)group < (uint64_t)n_groups) return 0;
    PyErr_Format(PyExc_ValueError, "groups holds %lld, outside [0, %zd) (the length of support)", (long long)group,
                 n_groups);
    return -1;
}

/* The floors' count: `support` (int64, one per group; None without floors) and the group of each
 * element, one for the block (an int) or an int64 array of one per element (held[0], held[1]), every
 * one checked to lie in [0, len(support)). */
typedef struct {
    int64_t *counts;
    Py_ssize_t n_groups, step;
    int64_t group;
    const int64_t *groups;
} Support;

static int take_support(PyObject *osupport, PyObject *ogroups, Py_ssize_t n, Held *held, Support *support)
{
    memset(support, 0, sizeof(*support));
    if (osupport == Py_None) return 0;
    if (take_buffer(osupport, &held[0], 1, "support", 'i', 0, 0) != 0) return -1;
    support->counts = held[0].view.buf;
    support->n_groups = held[0].view.shape[0];
    if (is_number(ogroups)) {
        if (!PyIndex_Check(ogroups)) {
            PyErr_Format(PyExc_TypeError, "groups must be an integer (the block's group) or an int64 array, got %R",
                         ogroups);
            return -1;
        }
        support->group = PyLong_AsLongLong(ogroups);
        if (support->group == -1 && PyErr_Occurred()) return -1;
        return check_group(support->group, support->n_groups);
    }
    if (take_buffer(ogroups, &held[1], 0, "groups", 'i', n, 1) != 0) return -1;
    support->groups = held[1].view.buf;
    support->step = step_of(&held[1]);
    for (Py_ssize_t j = 0; j < n; j++)  /* every group, before anything is counted */
        if (check_group(support->groups[j * support->step], support->n_groups) != 0) return -1;
    return 0;
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
    if (take_level(olevel, rows->n, &rows->held[2], &rows->level, &rows->levels) != 0) return -1;
    if (check_box(&rows->lo, &rows->hi, 1) != 0) return -1;
    rows->step0 = step_of(&rows->held[0]);
    rows->step1 = step_of(&rows->held[1]);
    rows->step_level = step_of(&rows->held[2]);
    return 0;
}

/* v at the corners of element j into `high` and `low` (a, b: s0_j, s1_j as float64), with the
 * NaN of np.maximum and np.minimum; `monotone` is cleared where s1_j >= 0 fails. */
#define CORNERS(a, b, high, low)                                                                     \
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
#define FOR_EACH_LAYOUT(BODY, T)                                                                     \
    if (levels != NULL)                                                                              \
        BODY(T, step0, step1, levels[j * step_level])                                                \
    else if (step0 == 1 && step1 == 1)                                                               \
        BODY(T, 1, 1, level)                                                                         \
    else                                                                                             \
        BODY(T, step0, step1, level)

#define READ_ELEMENT(T, STEP0, STEP1)                                                                \
    T raw1 = s1[j * (STEP1)];                                                                        \
    double a = (double)s0[j * (STEP0)], b = (double)raw1;                                            \
    CORNERS(a, b, high, low)                                                                         \
    if (j & 1) odd += high; else even += high;                                                       \
    if (candidates != NULL) {                                                                        \
        candidates[c] = raw1;                                                                        \
        c += (b >= candidate_level);                                                                 \
    }

#define REACH_BODY(T, STEP0, STEP1, LEVEL)                                                           \
    for (Py_ssize_t j = 0; j < n; j++) {                                                             \
        READ_ELEMENT(T, STEP0, STEP1)                                                                \
        (void)low;                                                                                   \
        positions[m] = (int64_t)j;                                                                   \
        column0[m] = a;                                                                              \
        column1[m] = b;                                                                              \
        highs[m] = high;                                                                             \
        m += (high >= (LEVEL));                                                                      \
    }

#define REACH_LOOP(NAME, T)                                                                          \
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

/* The outputs of the reach loop (held[0..4]): positions, column0, column1, high (at least n
 * each) and the candidates (None, or a buffer of the rows' dtype). */
static int take_reach_outputs(const Rows *rows, Held *held, PyObject *opositions, PyObject *ocolumn0,
                              PyObject *ocolumn1, PyObject *ohigh, PyObject *ocandidates)
{
    Py_ssize_t n = rows->n;
    if (take_buffer(opositions, &held[0], 1, "positions", 'i', n, 0) != 0) return -1;
    if (take_buffer(ocolumn0, &held[1], 1, "column0", 'd', n, 0) != 0) return -1;
    if (take_buffer(ocolumn1, &held[2], 1, "column1", 'd', n, 0) != 0) return -1;
    if (take_buffer(ohigh, &held[3], 1, "high", 'd', n, 0) != 0) return -1;
    if (ocandidates != Py_None && take_buffer(ocandidates, &held[4], 1, "candidates", rows->kind, n, 0) != 0)
        return -1;
    return 0;
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
    if (take_reach_outputs(&rows, held, opositions, ocolumn0, ocolumn1, ohigh, ocandidates) != 0) goto done;
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

/* The box of a decision: one multiplier (v at the corners, as CORNERS) or several (as
 * several_extremes, with the centre and half-widths). */
typedef struct {
    Py_ssize_t r;
    const double *lo, *hi, *centre, *half;
    int corners_allowed;
} Box;

static void several_extremes(const double *b, Py_ssize_t r, double a, const double *lo, const double *hi,
                             const double *centre, const double *half, int corners_allowed, double *low, double *high);

/* The smallest v over the box of an element whose scores are b[0..r]. */
static inline double smallest_v(const Box *box, const double *b)
{
    double low, high;
    if (box->r == 1) {
        double lo = box->lo[0], hi = box->hi[0];
        int lo_negative = !(lo >= 0.0), monotone = 1;
        CORNERS(b[0], b[1], at_hi, smallest)
        (void)at_hi;
        (void)monotone;
        return smallest;
    }
    several_extremes(b, box->r, b[0], box->lo, box->hi, box->centre, box->half, box->corners_allowed, &low, &high);
    return low;
}

/* Add x to the compensated sum (sum, error) (Neumaier's variant of Kahan's summation): what the
 * rounding of each addition lost is kept in `error`, so that many small scores after a large
 * one still count. */
static inline void add_compensated(double *sum, double *error, double x)
{
    double t = *sum + x;
    if (fabs(*sum) >= fabs(x))
        *error += (*sum - t) + x;
    else
        *error += (x - t) + *sum;
    *sum = t;
}

/* The decision on what reached (a block's first `m` entries of positions, columns[0..r] and
 * highs, in cache after the reach loop): the smallest v again, the counts, the elements fixed to
 * 1 into `ones` (their positions plus offset) and their scores added to the running sums
 * taken[0..r] (compensated: taken[r + 1 + i] holds the error of taken[i]; the caller adds the two
 * once the last block is in), the others
 * compacted in place at the front of positions and columns (plus offset). With `support`, the
 * count per group of the elements whose smallest v reaches their level. `b`: scratch of r + 1;
 * `taken`: the 2 (r + 1) running sums and errors, zeros before the first block. */
static void decide(Py_ssize_t m, const Box *box, double level, const double *levels, Py_ssize_t step_level,
                   double one_level, double zero_level, int64_t offset, const Support *support, int64_t *positions,
                   double **columns, const double *highs, int64_t *ones, Py_ssize_t *counts, double *taken, double *b)
{
    Py_ssize_t r = box->r, o = 0, s = 0, above_one = 0, at_or_above_zero = 0;
    double *error = taken + r + 1;
    for (Py_ssize_t k = 0; k < m; k++) {
        int64_t j = positions[k];
        for (Py_ssize_t i = 0; i <= r; i++) b[i] = columns[i][k];
        double low = smallest_v(box, b);
        above_one += highs[k] > one_level;
        at_or_above_zero += low >= zero_level;
        if (support->counts != NULL) {
            int64_t g = support->groups == NULL ? support->group : support->groups[j * support->step];
            support->counts[g] += low >= (levels == NULL ? level : levels[j * step_level]);
        }
        if (low > one_level) {
            ones[o++] = offset + j;
            for (Py_ssize_t i = 0; i <= r; i++) add_compensated(&taken[i], &error[i], b[i]);
        } else {
            positions[s] = offset + j;
            for (Py_ssize_t i = 0; i <= r; i++) columns[i][s] = b[i];
            s++;
        }
    }
    counts[0] = o;
    counts[1] = s;
    counts[2] = above_one;
    counts[3] = at_or_above_zero;
}

static PyObject *screen(PyObject *Py_UNUSED(self), PyObject *args)
{
    PyObject *o0, *o1, *olevel, *ogroups, *osupport, *opositions, *ocolumn0, *ocolumn1, *ohigh, *oones,
        *ocandidates, *otaken;
    Rows rows;
    double one_level, zero_level;
    long long offset;
    if (!PyArg_ParseTuple(args, "OOddOdddLOOOOOOOOO:screen", &o0, &o1, &rows.lo, &rows.hi, &olevel,
                          &rows.candidate_level, &one_level, &zero_level, &offset, &ogroups, &osupport,
                          &opositions, &ocolumn0, &ocolumn1, &ohigh, &oones, &ocandidates, &otaken))
        return NULL;
    Held held[9];
    memset(held, 0, sizeof(held));
    PyObject *result = NULL;
    if (take_rows(&rows, o0, o1, olevel) != 0) goto done;
    Support support;
    if (take_support(osupport, ogroups, rows.n, held, &support) != 0) goto done;
    if (take_reach_outputs(&rows, held + 2, opositions, ocolumn0, ocolumn1, ohigh, ocandidates) != 0) goto done;
    if (take_buffer(oones, &held[7], 1, "ones", 'i', rows.n, 0) != 0) goto done;
    if (take_buffer(otaken, &held[8], 1, "taken", 'd', 4, 1) != 0) goto done;
    void *candidates = held[6].held ? held[6].view.buf : NULL;
    Py_ssize_t m, found = 0, counts[4];
    double total, *taken = held[8].view.buf, b[2];
    double *columns[2] = {held[3].view.buf, held[4].view.buf};
    Box box = {1, &rows.lo, &rows.hi, NULL, NULL, 0};
    int monotone;
    Py_BEGIN_ALLOW_THREADS
    m = reach_rows(&rows, candidates, &found, &total, &monotone, held[2].view.buf, held[3].view.buf,
                   held[4].view.buf, held[5].view.buf);
    decide(m, &box, rows.level, rows.levels, rows.step_level, one_level, zero_level, offset, &support,
           held[2].view.buf, columns, held[5].view.buf, held[7].view.buf, counts, taken, b);
    Py_END_ALLOW_THREADS
    result = Py_BuildValue("nnnnnd", counts[0], counts[1], counts[2], counts[3], found, total);
done:
    release(rows.held, 3);
    release(held, 9);
    return result;
}

/* Several multipliers (r >= 2, lo >= 0): v_j(lambda) = s0_j + sum_i lambda_i s_ij over the box.
 * Where every s_ij >= 0 and lo >= 0, v is smallest at lo and largest at hi:
 *     low_j = (lo_1 s_1j + ... + lo_r s_rj) + s0_j,    high_j the same at hi;
 * elsewhere, from the centre c and the half-widths w of the box:
 *     v_j(c) = (c_1 s_1j + ... + c_r s_rj) + s0_j,  spread_j = w_1 |s_1j| + ... + w_r |s_rj|,
 *     low_j = v_j(c) - spread_j,  high_j = v_j(c) + spread_j,
 * each sum taken in the order of the rows (copslp._analytic.screening.box_extremes decides between the two
 * forms per block, not per element, and sums with einsum: its numbers may differ from these in
 * the last bits; both bound v over the box). The rows: a tuple of r + 1 float64 or float32 arrays
 * of one dtype, with a step of whole elements. */
typedef struct {
    Py_ssize_t count, n;
    char kind;
    Held *held;
    const char **data;
    Py_ssize_t *steps;
    double **out;      /* the output columns, one per row */
    char **candidates; /* one per secondary row, or NULL */
    Held *out_held, *candidates_held;
} ManyRows;

static void release_many(ManyRows *rows)
{
    if (rows->held != NULL) release(rows->held, (int)rows->count);
    if (rows->out_held != NULL) release(rows->out_held, (int)rows->count);
    if (rows->candidates_held != NULL) release(rows->candidates_held, (int)rows->count);
    PyMem_Free(rows->held);
    PyMem_Free(rows->out_held);
    PyMem_Free(rows->candidates_held);
    PyMem_Free(rows->data);
    PyMem_Free(rows->steps);
    PyMem_Free(rows->out);
    PyMem_Free(rows->candidates);
}

/* The rows (a tuple of r + 1 >= 3 arrays), the output columns (a tuple of r + 1 float64
 * buffers of at least n) and the candidates (None, or a tuple of r buffers of the rows' dtype). */
static int take_many(ManyRows *rows, PyObject *orows, PyObject *ocolumns, PyObject *ocandidates)
{
    memset(rows, 0, sizeof(*rows));
    if (!PyTuple_Check(orows) || PyTuple_GET_SIZE(orows) < 3) {
        PyErr_SetString(PyExc_TypeError, "rows must be a tuple of at least 3 arrays (s_0 and two or more s_i)");
        return -1;
    }
    Py_ssize_t count = rows->count = PyTuple_GET_SIZE(orows);
    rows->held = PyMem_Calloc(count, sizeof(Held));
    rows->out_held = PyMem_Calloc(count, sizeof(Held));
    rows->candidates_held = PyMem_Calloc(count, sizeof(Held));
    rows->data = PyMem_Calloc(count, sizeof(char *));
    rows->steps = PyMem_Calloc(count, sizeof(Py_ssize_t));
    rows->out = PyMem_Calloc(count, sizeof(double *));
    rows->candidates = PyMem_Calloc(count, sizeof(char *));
    if (rows->held == NULL || rows->out_held == NULL || rows->candidates_held == NULL || rows->data == NULL ||
        rows->steps == NULL || rows->out == NULL || rows->candidates == NULL) {
        PyErr_NoMemory();
        return -1;
    }
    if (take_buffer(PyTuple_GET_ITEM(orows, 0), &rows->held[0], 0, "rows[0]", 0, 0, 0) != 0) return -1;
    rows->n = rows->held[0].view.shape[0];
    rows->kind = kind_of(&rows->held[0].view);
    char name[32];
    for (Py_ssize_t i = 0; i < count; i++) {
        PyOS_snprintf(name, sizeof(name), "rows[%zd]", i);
        if (i > 0 && take_buffer(PyTuple_GET_ITEM(orows, i), &rows->held[i], 0, name, rows->kind, rows->n, 1) != 0)
            return -1;
        rows->data[i] = rows->held[i].view.buf;
        rows->steps[i] = step_of(&rows->held[i]);
    }
    if (!PyTuple_Check(ocolumns) || PyTuple_GET_SIZE(ocolumns) != count) {
        PyErr_Format(PyExc_TypeError, "columns must be a tuple of %zd buffers, one per row", count);
        return -1;
    }
    for (Py_ssize_t i = 0; i < count; i++) {
        PyOS_snprintf(name, sizeof(name), "columns[%zd]", i);
        if (take_buffer(PyTuple_GET_ITEM(ocolumns, i), &rows->out_held[i], 1, name, 'd', rows->n, 0) != 0) return -1;
        rows->out[i] = rows->out_held[i].view.buf;
    }
    if (ocandidates != Py_None) {
        if (!PyTuple_Check(ocandidates) || PyTuple_GET_SIZE(ocandidates) != count - 1) {
            PyErr_Format(PyExc_TypeError, "candidates must be None or a tuple of %zd buffers, one per secondary row",
                         count - 1);
            return -1;
        }
        for (Py_ssize_t i = 1; i < count; i++) {
            PyOS_snprintf(name, sizeof(name), "candidates[%zd]", i - 1);
            if (take_buffer(PyTuple_GET_ITEM(ocandidates, i - 1), &rows->candidates_held[i], 1, name, rows->kind,
                            rows->n, 0) != 0)
                return -1;
            rows->candidates[i] = rows->candidates_held[i].view.buf;
        }
    }
    return 0;
}

/* A float64 array of `length` values (the corners of the box, the candidate levels). */
static int take_doubles(PyObject *object, Held *held, const char *name, Py_ssize_t length, const double **values)
{
    if (take_buffer(object, held, 0, name, 'd', length, 1) != 0) return -1;
    if (held->view.strides[0] != 8) {
        PyErr_Format(PyExc_ValueError, "%s must be contiguous", name);
        return -1;
    }
    *values = held->view.buf;
    return 0;
}

/* v at the box's extremes for element j of the rows (values b[1..r] read already, a = s0_j). */
static void several_extremes(const double *b, Py_ssize_t r, double a, const double *lo, const double *hi,
                                    const double *centre, const double *half, int corners_allowed, double *low,
                                    double *high)
{
    int corners = corners_allowed;
    for (Py_ssize_t i = 1; i <= r; i++) corners &= (b[i] >= 0.0);
    if (corners) {
        double at_lo = lo[0] * b[1], at_hi = hi[0] * b[1];
        for (Py_ssize_t i = 1; i < r; i++) {
            at_lo += lo[i] * b[i + 1];
            at_hi += hi[i] * b[i + 1];
        }
        *low = at_lo + a;
        *high = at_hi + a;
    } else {
        double middle = centre[0] * b[1], spread = half[0] * fabs(b[1]);
        for (Py_ssize_t i = 1; i < r; i++) {
            middle += centre[i] * b[i + 1];
            spread += half[i] * fabs(b[i + 1]);
        }
        middle += a;
        *low = middle - spread;
        *high = middle + spread;
    }
}

/* The reach loop for several multipliers, a chunk of CHUNK elements at a time: each row is read
 * once into the chunk's sums (loops the compiler vectorises), then the chunk's elements that
 * reach are written out with their columns. The numbers are those of several_extremes. */
#define CHUNK 256

/* The step of row i: 1 where UNIT (every row contiguous: loops the compiler vectorises). */
#define STEP_OF(UNIT, i) ((UNIT) ? 1 : rows->steps[i])

#define SEVERAL_REACH(NAME, T, UNIT)                                                                            \
    static Py_ssize_t NAME(const ManyRows *rows, const double *hi, const double *centre,                        \
                           const double *half, int corners_allowed, double level, const double *levels,         \
                           Py_ssize_t step_level, const double *candidate_levels, Py_ssize_t *found,            \
                           double *total, int64_t *restrict positions, double *restrict highs)                  \
    {                                                                                                           \
        Py_ssize_t r = rows->count - 1, n = rows->n, m = 0;                                                     \
        double even = 0.0, odd = 0.0;                                                                           \
        double a[CHUNK], at_hi[CHUNK], middle[CHUNK], spread[CHUNK], high[CHUNK];                               \
        int signed_[CHUNK];                                                                                     \
        for (Py_ssize_t start = 0; start < n; start += CHUNK) {                                                 \
            Py_ssize_t width = n - start < CHUNK ? n - start : CHUNK;                                           \
            const T *s0 = (const T *)rows->data[0] + start * STEP_OF(UNIT, 0);                                  \
            Py_ssize_t step0 = STEP_OF(UNIT, 0);                                                                \
            for (Py_ssize_t c = 0; c < width; c++) a[c] = (double)s0[c * step0];                                \
            int any_signed = 0;                                                                                 \
            for (Py_ssize_t i = 1; i <= r; i++) {                                                               \
                const T *si = (const T *)rows->data[i] + start * STEP_OF(UNIT, i);                              \
                Py_ssize_t step = STEP_OF(UNIT, i);                                                             \
                double h = hi[i - 1];                                                                           \
                if (i == 1) {                                                                                   \
                    for (Py_ssize_t c = 0; c < width; c++) {                                                    \
                        double v = (double)si[c * step];                                                        \
                        at_hi[c] = h * v;                                                                       \
                        signed_[c] = !(v >= 0.0);                                                               \
                    }                                                                                           \
                } else {                                                                                        \
                    for (Py_ssize_t c = 0; c < width; c++) {                                                    \
                        double v = (double)si[c * step];                                                        \
                        at_hi[c] += h * v;                                                                      \
                        signed_[c] |= !(v >= 0.0);                                                              \
                    }                                                                                           \
                }                                                                                               \
            }                                                                                                   \
            for (Py_ssize_t c = 0; c < width; c++) {                                                            \
                signed_[c] |= !corners_allowed;                                                                 \
                any_signed |= signed_[c];                                                                       \
                high[c] = at_hi[c] + a[c];                                                                      \
            }                                                                                                   \
            if (any_signed) { /* v at the centre and the spread, for the elements that need them */             \
                for (Py_ssize_t i = 1; i <= r; i++) {                                                           \
                    const T *si = (const T *)rows->data[i] + start * STEP_OF(UNIT, i);                          \
                    Py_ssize_t step = STEP_OF(UNIT, i);                                                         \
                    for (Py_ssize_t c = 0; c < width; c++) {                                                    \
                        double v = (double)si[c * step];                                                        \
                        if (i == 1) {                                                                           \
                            middle[c] = centre[0] * v;                                                          \
                            spread[c] = half[0] * fabs(v);                                                      \
                        } else {                                                                                \
                            middle[c] += centre[i - 1] * v;                                                     \
                            spread[c] += half[i - 1] * fabs(v);                                                 \
                        }                                                                                       \
                    }                                                                                           \
                }                                                                                               \
                for (Py_ssize_t c = 0; c < width; c++)                                                          \
                    if (signed_[c]) high[c] = (middle[c] + a[c]) + spread[c];                                   \
            }                                                                                                   \
            Py_ssize_t before = m;                                                                              \
            for (Py_ssize_t c = 0; c < width; c++) {                                                            \
                Py_ssize_t j = start + c;                                                                       \
                if (j & 1) odd += high[c]; else even += high[c];                                                \
                positions[m] = (int64_t)j;                                                                      \
                highs[m] = high[c];                                                                             \
                m += (high[c] >= (levels == NULL ? level : levels[j * step_level]));                            \
            }                                                                                                   \
            /* the columns of what reached, and each secondary row's candidates, while in cache */              \
            for (Py_ssize_t i = 0; i <= r; i++) {                                                               \
                const T *si = (const T *)rows->data[i];                                                         \
                Py_ssize_t step = STEP_OF(UNIT, i);                                                             \
                double *out = rows->out[i];                                                                     \
                for (Py_ssize_t k = before; k < m; k++) out[k] = (double)si[positions[k] * step];               \
                if (i > 0 && candidate_levels != NULL) {                                                        \
                    T *found_values = (T *)rows->candidates[i];                                                 \
                    double at = candidate_levels[i - 1];                                                        \
                    Py_ssize_t f = found[i - 1];                                                                \
                    for (Py_ssize_t j = start; j < start + width; j++) {                                        \
                        T v = si[j * step];                                                                     \
                        found_values[f] = v;                                                                    \
                        f += ((double)v >= at);                                                                 \
                    }                                                                                           \
                    found[i - 1] = f;                                                                           \
                }                                                                                               \
            }                                                                                                   \
        }                                                                                                       \
        *total = even + odd;                                                                                    \
        return m;                                                                                               \
    }

SEVERAL_REACH(several_reach_float64, double, 0)
SEVERAL_REACH(several_reach_float32, float, 0)
SEVERAL_REACH(several_reach_float64_contiguous, double, 1)
SEVERAL_REACH(several_reach_float32_contiguous, float, 1)

/* The whole screening of a block for R = 2, 3 or 4 secondary rows, every row contiguous: one
 * pass over the elements that reads each of their scores once (R known to the compiler: its loops
 * over the rows unrolled) and decides each element that reaches at once, with the numbers and
 * the outputs of the chunked loop followed by decide (several_extremes: low_j from the same
 * products as high_j). A branch per element that reaches (few do) instead of a slot written for
 * every element; the candidates, which are more, at their next free slot. */
typedef struct {
    double one_level, zero_level;
    int64_t offset;
    const Support *support;
    int64_t *ones;
    double **columns; /* the survivors' scores, one per row */
    double *taken;    /* the 2 (R + 1) running sums and errors */
    Py_ssize_t *counts;
} Decision;

#define SEVERAL_SCREEN_FIXED(NAME, T, R, LEVEL, CANDIDATES)                                                     \
    static void NAME(const ManyRows *rows, const Box *box, double level, const double *levels,                  \
                     Py_ssize_t step_level, const double *candidate_levels, Py_ssize_t *found, double *total,      \
                     int64_t *restrict positions, const Decision *decision)                                      \
    {                                                                                                           \
        const double *lo = box->lo, *hi = box->hi, *centre = box->centre, *half = box->half;                    \
        const Support *support = decision->support;                                                             \
        double one_level = decision->one_level, zero_level = decision->zero_level;                              \
        double *taken = decision->taken, *error = decision->taken + R + 1;                                      \
        int64_t *restrict ones = decision->ones, offset = decision->offset;                                     \
        Py_ssize_t n = rows->n, o = 0, kept = 0, above_one = 0, at_or_above_zero = 0, f[R + 1];                 \
        const T *restrict s[R + 1];                                                                             \
        double *restrict columns[R + 1];                                                                        \
        T *restrict candidates[R + 1];                                                                          \
        double at[R + 1];                                                                                       \
        for (int i = 0; i <= R; i++) {                                                                          \
            s[i] = (const T *)rows->data[i];                                                                    \
            columns[i] = decision->columns[i];                                                                  \
            candidates[i] = (CANDIDATES) && i > 0 ? (T *)rows->candidates[i] : NULL;                            \
            at[i] = (CANDIDATES) && i > 0 ? candidate_levels[i - 1] : 0.0;                                      \
            f[i] = (CANDIDATES) && i > 0 ? found[i - 1] : 0;                                                    \
        }                                                                                                       \
        (void)levels;                                                                                           \
        (void)step_level;                                                                                       \
        double even = 0.0, odd = 0.0;                                                                           \
        for (Py_ssize_t j = 0; j < n; j++) {                                                                    \
            double b[R + 1], high, low;                                                                         \
            int signed_ = !box->corners_allowed;                                                                \
            b[0] = (double)s[0][j];                                                                             \
            for (int i = 1; i <= R; i++) {                                                                      \
                b[i] = (double)s[i][j];                                                                         \
                signed_ |= !(b[i] >= 0.0);                                                                      \
            }                                                                                                   \
            double middle = 0.0, spread = 0.0;                                                                  \
            if (!signed_) {                                                                                     \
                double at_hi = hi[0] * b[1];                                                                    \
                for (int i = 2; i <= R; i++) at_hi += hi[i - 1] * b[i];                                         \
                high = at_hi + b[0];                                                                            \
            } else {                                                                                            \
                middle = centre[0] * b[1];                                                                      \
                spread = half[0] * fabs(b[1]);                                                                  \
                for (int i = 2; i <= R; i++) {                                                                  \
                    middle += centre[i - 1] * b[i];                                                             \
                    spread += half[i - 1] * fabs(b[i]);                                                         \
                }                                                                                               \
                middle += b[0];                                                                                 \
                high = middle + spread;                                                                         \
            }                                                                                                   \
            if (j & 1) odd += high; else even += high;                                                          \
            if (CANDIDATES)                                                                                     \
                for (int i = 1; i <= R; i++) {                                                                  \
                    candidates[i][f[i]] = s[i][j];                                                              \
                    f[i] += (b[i] >= at[i]);                                                                    \
                }                                                                                               \
            if (!(high >= (LEVEL))) continue;                                                                   \
            if (!signed_) {                                                                                     \
                double at_lo = lo[0] * b[1];                                                                    \
                for (int i = 2; i <= R; i++) at_lo += lo[i - 1] * b[i];                                         \
                low = at_lo + b[0];                                                                             \
            } else {                                                                                            \
                low = middle - spread;                                                                          \
            }                                                                                                   \
            above_one += high > one_level;                                                                      \
            at_or_above_zero += low >= zero_level;                                                              \
            if (support->counts != NULL) {                                                                      \
                int64_t g = support->groups == NULL ? support->group : support->groups[j * support->step];      \
                support->counts[g] += low >= (LEVEL);                                                           \
            }                                                                                                   \
            if (low > one_level) {                                                                              \
                ones[o++] = offset + j;                                                                         \
                for (int i = 0; i <= R; i++) add_compensated(&taken[i], &error[i], b[i]);                       \
            } else {                                                                                            \
                positions[kept] = offset + j;                                                                   \
                for (int i = 0; i <= R; i++) columns[i][kept] = b[i];                                           \
                kept++;                                                                                         \
            }                                                                                                   \
        }                                                                                                       \
        if (CANDIDATES)                                                                                         \
            for (int i = 1; i <= R; i++) found[i - 1] = f[i];                                                   \
        *total = even + odd;                                                                                    \
        Py_ssize_t *counts = decision->counts;                                                                  \
        counts[0] = o;                                                                                          \
        counts[1] = kept;                                                                                       \
        counts[2] = above_one;                                                                                  \
        counts[3] = at_or_above_zero;                                                                           \
    }

/* Every variant of a dtype and R: a level per element or one, candidates or none. */
#define SEVERAL_SCREEN_FIXED_ALL(T, R)                                                                          \
    SEVERAL_SCREEN_FIXED(several_screen_##T##_##R##_levels, T, R, levels[j * step_level], 0)                   \
    SEVERAL_SCREEN_FIXED(several_screen_##T##_##R##_level, T, R, level, 0)                                     \
    SEVERAL_SCREEN_FIXED(several_screen_##T##_##R##_levels_candidates, T, R, levels[j * step_level], 1)        \
    SEVERAL_SCREEN_FIXED(several_screen_##T##_##R##_level_candidates, T, R, level, 1)

SEVERAL_SCREEN_FIXED_ALL(double, 2)
SEVERAL_SCREEN_FIXED_ALL(double, 3)
SEVERAL_SCREEN_FIXED_ALL(double, 4)
SEVERAL_SCREEN_FIXED_ALL(float, 2)
SEVERAL_SCREEN_FIXED_ALL(float, 3)
SEVERAL_SCREEN_FIXED_ALL(float, 4)

typedef void (*SeveralScreen)(const ManyRows *, const Box *, double, const double *, Py_ssize_t, const double *,
                              Py_ssize_t *, double *, int64_t *, const Decision *);

#define PICK_FIXED(T, R)                                                                                        \
    (levels != NULL                                                                                             \
         ? (candidates ? several_screen_##T##_##R##_levels_candidates : several_screen_##T##_##R##_levels)       \
         : (candidates ? several_screen_##T##_##R##_level_candidates : several_screen_##T##_##R##_level))

/* The one-pass screening for these rows where every row is contiguous and R is 2, 3 or 4; else
 * NULL (the chunked loop, then decide). */
static SeveralScreen several_screen_of(const ManyRows *rows, int contiguous, const double *levels, int candidates)
{
    Py_ssize_t r = rows->count - 1;
    int wide = rows->kind == 'd';
    if (!contiguous) return NULL;
    if (r == 2) return wide ? PICK_FIXED(double, 2) : PICK_FIXED(float, 2);
    if (r == 3) return wide ? PICK_FIXED(double, 3) : PICK_FIXED(float, 3);
    if (r == 4) return wide ? PICK_FIXED(double, 4) : PICK_FIXED(float, 4);
    return NULL;
}

static PyObject *screen_several(PyObject *Py_UNUSED(self), PyObject *args)
{
    PyObject *orows, *olo, *ohi, *olevel, *ocandidate_levels, *ogroups, *osupport, *opositions, *ocolumns, *ohigh,
        *oones, *ocandidates, *otaken;
    double one_level, zero_level;
    long long offset;
    if (!PyArg_ParseTuple(args, "OOOOOddLOOOOOOOO:screen_several", &orows, &olo, &ohi, &olevel,
                          &ocandidate_levels, &one_level, &zero_level, &offset, &ogroups, &osupport, &opositions,
                          &ocolumns, &ohigh, &oones, &ocandidates, &otaken))
        return NULL;
    ManyRows rows;
    Held held[9];
    memset(held, 0, sizeof(held));
    PyObject *result = NULL, *found_tuple = NULL;
    double *scratch = NULL;
    Py_ssize_t *found = NULL;
    if (take_many(&rows, orows, ocolumns, ocandidates) != 0) goto done;
    Py_ssize_t n = rows.n, r = rows.count - 1;
    const double *lo, *hi, *candidate_levels = NULL, *levels = NULL;
    if (take_doubles(olo, &held[0], "lo", r, &lo) != 0 || take_doubles(ohi, &held[1], "hi", r, &hi) != 0) goto done;
    if (check_box(lo, hi, r) != 0) goto done;
    if ((ocandidate_levels == Py_None) != (ocandidates == Py_None)) {
        PyErr_SetString(PyExc_TypeError, "candidate_levels and candidates must both be given or both be None");
        goto done;
    }
    if (ocandidate_levels != Py_None &&
        take_doubles(ocandidate_levels, &held[2], "candidate_levels", r, &candidate_levels) != 0)
        goto done;
    double level;
    if (take_level(olevel, n, &held[3], &level, &levels) != 0) goto done;
    Support support;
    if (take_support(osupport, ogroups, n, &held[4], &support) != 0) goto done;
    if (take_buffer(opositions, &held[6], 1, "positions", 'i', n, 0) != 0) goto done;
    if (take_buffer(ohigh, &held[7], 1, "high", 'd', n, 0) != 0) goto done;
    if (take_buffer(otaken, &held[8], 1, "taken", 'd', 2 * rows.count, 1) != 0) goto done;
    double *taken = held[8].view.buf;
    Held ones_held;
    memset(&ones_held, 0, sizeof(ones_held));
    if (take_buffer(oones, &ones_held, 1, "ones", 'i', n, 0) != 0) {
        release(&ones_held, 1);
        goto done;
    }
    scratch = PyMem_Calloc(3 * r + 2 + (rows.count), sizeof(double));
    found = PyMem_Calloc(r, sizeof(Py_ssize_t));
    if (scratch == NULL || found == NULL) {
        release(&ones_held, 1);
        PyErr_NoMemory();
        goto done;
    }
    double *centre = scratch, *half = scratch + r, *b = scratch + 2 * r;
    int corners_allowed = 1;
    for (Py_ssize_t i = 0; i < r; i++) {
        centre[i] = (lo[i] + hi[i]) / 2.0;
        half[i] = (hi[i] - lo[i]) / 2.0;
        corners_allowed &= (lo[i] >= 0.0);
    }
    int64_t *positions = held[6].view.buf, *ones = ones_held.view.buf;
    double *highs = held[7].view.buf, total;
    Py_ssize_t m, counts[4], step_level = step_of(&held[3]);
    Box box = {r, lo, hi, centre, half, corners_allowed};
    int contiguous = 1;
    for (Py_ssize_t i = 0; i < rows.count; i++) contiguous &= rows.steps[i] == 1;
    SeveralScreen one_pass = several_screen_of(&rows, contiguous, levels, candidate_levels != NULL);
    Decision decision = {one_level, zero_level, offset, &support, ones, rows.out, taken, counts};
    Py_BEGIN_ALLOW_THREADS
    if (one_pass != NULL) {
        one_pass(&rows, &box, level, levels, step_level, candidate_levels, found, &total, positions, &decision);
    } else {
        if (rows.kind == 'd' && contiguous)
            m = several_reach_float64_contiguous(&rows, hi, centre, half, corners_allowed, level, levels,
                                                 step_level, candidate_levels, found, &total, positions, highs);
        else if (rows.kind == 'd')
            m = several_reach_float64(&rows, hi, centre, half, corners_allowed, level, levels, step_level,
                                      candidate_levels, found, &total, positions, highs);
        else if (contiguous)
            m = several_reach_float32_contiguous(&rows, hi, centre, half, corners_allowed, level, levels,
                                                 step_level, candidate_levels, found, &total, positions, highs);
        else
            m = several_reach_float32(&rows, hi, centre, half, corners_allowed, level, levels, step_level,
                                      candidate_levels, found, &total, positions, highs);
        decide(m, &box, level, levels, step_level, one_level, zero_level, offset, &support, positions, rows.out,
               highs, ones, counts, taken, b);
    }
    Py_END_ALLOW_THREADS
    release(&ones_held, 1);
    found_tuple = PyTuple_New(r);
    if (found_tuple == NULL) goto done;
    for (Py_ssize_t i = 0; i < r; i++) {
        PyObject *count = PyLong_FromSsize_t(found[i]);
        if (count == NULL) goto done; /* the tuple's empty slots are NULL, which its release skips */
        PyTuple_SET_ITEM(found_tuple, i, count);
    }
    result = Py_BuildValue("nnnnOd", counts[0], counts[1], counts[2], counts[3], found_tuple, total);
done:
    Py_XDECREF(found_tuple);
    PyMem_Free(scratch);
    PyMem_Free(found);
    release(held, 9);
    release_many(&rows);
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
     "The reach loop of screen, on its own."},
    {"screen", screen, METH_VARARGS,
     "screen(s0, s1, lo, hi, level, candidate_level, one_level, zero_level, offset, groups, support,\n"
     "       positions, column0, column1, high, ones, candidates, taken)\n"
     "    -> (n_ones, n_survivors, above_one, at_or_above_zero, candidate_count, total)\n\n"
     "One block's screening with one multiplier: among the elements whose largest v over [lo, hi]\n"
     "reaches their level, those whose smallest v exceeds one_level (their positions plus offset in\n"
     "`ones`, their s0 and s1 added to the running compensated sums `taken`: float64, [sum of s0,\n"
     "sum of s1, error of each], zeros before the first block) and the others (positions plus offset in\n"
     "`positions`, s0 and s1 in column0, column1; `high` is scratch); how many of them have their\n"
     "largest v above one_level and their smallest at or above zero_level; with `support` (int64,\n"
     "one per group),\n"
     "the count per group of those whose smallest v reaches their level, the group being `groups`\n"
     "(one for the block, or an int64 array of one per element). The total and the candidates as\n"
     "in reach. See copslp._analytic.screening.screen_piece."},
    {"screen_several", screen_several, METH_VARARGS,
     "screen_several(rows, lo, hi, level, candidate_levels, one_level, zero_level, offset, groups, support,\n"
     "               positions, columns, high, ones, candidates, taken)\n"
     "    -> (n_ones, n_survivors, above_one, at_or_above_zero, candidate_counts, total)\n\n"
     "screen for several multipliers: rows a tuple of r + 1 arrays (s_0 first), lo and hi float64\n"
     "arrays of r (lo >= 0), columns a tuple of r + 1 float64 buffers, candidate_levels a float64\n"
     "array of r and candidates a tuple of r buffers (or both None); candidate_counts a tuple of\n"
     "r counts; taken the 2 (r + 1) running sums and errors. See copslp._analytic.screening.screen_piece."},
    {NULL, NULL, 0, NULL}};

/* Multi-phase initialisation, for the slots. The module keeps no state and its loops touch only
 * the buffers they are handed (with the GIL released already), so it runs without the GIL in a
 * free-threaded build. */
static PyModuleDef_Slot slots[] = {
#ifdef Py_mod_gil
    {Py_mod_gil, Py_MOD_GIL_NOT_USED},
#endif
    {0, NULL}};

static struct PyModuleDef module = {PyModuleDef_HEAD_INIT, "_kernels",
                                    "The fused screening passes of copslp._analytic.screening.", 0, methods,
                                    slots, NULL, NULL, NULL};

PyMODINIT_FUNC PyInit__kernels(void) { return PyModuleDef_Init(&module); }
