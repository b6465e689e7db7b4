/* The one pass over every element that numpy cannot fuse: the largest v over a box of one
 * multiplier, the elements that reach their level, and what validation needs of the same read.
 *
 * For each j of a block:
 *
 *     high_j = max(s0_j + lo * s1_j, s0_j + hi * s1_j)        (v at hi where s1_j >= 0, lo >= 0)
 *
 * in the floating-point operations numpy uses (a product, then a sum; no fused multiply-add,
 * see setup.py), so that every finite number is the one copslp._screening.box_extremes gives.
 * The positions j with high_j >= level_j are written with s0_j, s1_j (as float64) and high_j;
 * the total of high over the block (finite only if every entry is) and, when asked, the s1_j
 * at or above a candidate level, in their own dtype and in order. Numbers made from non-finite
 * entries are not specified beyond a non-finite total.
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

/* 'd' / 'f' / an 8-byte integer, native order (the formats numpy gives its own arrays). */
static char kind_of(const Py_buffer *view)
{
    const char *format = view->format == NULL ? "B" : view->format;
    if (format[0] == '=' || format[0] == '@') format++;
    if (format[1] != '\0') return '?';
    if (format[0] == 'd' && view->itemsize == 8) return 'd';
    if (format[0] == 'f' && view->itemsize == 4) return 'f';
    if ((format[0] == 'q' || format[0] == 'l') && view->itemsize == 8) return 'i';
    return '?';
}

static int take_buffer(PyObject *object, Held *held, int writable, const char *name, char want,
                       Py_ssize_t length, int exact)
{
    int flags = writable ? PyBUF_RECORDS : PyBUF_RECORDS_RO;
    if (PyObject_GetBuffer(object, &held->view, flags) != 0) {  /* numpy's words, with the name */
        PyObject *type, *value, *traceback;
        PyErr_Fetch(&type, &value, &traceback);
        PyErr_Format(type == NULL ? PyExc_TypeError : type, "%s: %S", name, value == NULL ? Py_None : value);
        Py_XDECREF(type);
        Py_XDECREF(value);
        Py_XDECREF(traceback);
        return -1;
    }
    held->held = 1;
    char kind = kind_of(&held->view);
    if (held->view.ndim != 1) {
        PyErr_Format(PyExc_ValueError, "%s must be one-dimensional, got %d dimensions", name,
                     held->view.ndim);
        return -1;
    }
    if (want != 0 && kind != want) {
        PyErr_Format(PyExc_TypeError, "%s has format '%s', expected '%c'", name,
                     held->view.format == NULL ? "B" : held->view.format, want);
        return -1;
    }
    if (want == 0 && kind != 'd' && kind != 'f') {
        PyErr_Format(PyExc_TypeError, "%s has format '%s', expected float64 or float32", name,
                     held->view.format == NULL ? "B" : held->view.format);
        return -1;
    }
    Py_ssize_t have = held->view.shape[0];
    if ((exact && have != length) || (!exact && have < length)) {
        PyErr_Format(PyExc_ValueError, "%s has length %zd, needs %s%zd", name, have,
                     exact ? "" : "at least ", length);
        return -1;
    }
    return 0;
}

/* One loop per input dtype T and layout: rows read with a step of `step0`, `step1` elements
 * (1 for contiguous rows, which the compiler then reads as such), levels one per element or
 * one for all. `restrict`: no output overlaps an input, which lets the loads run ahead of the
 * stores. Two running sums, so that the additions do not wait on each other. */
#define REACH_BODY(T, STEP0, STEP1, LEVEL)                                                          \
    for (Py_ssize_t j = 0; j < n; j++) {                                                             \
        T raw1 = s1[j * (STEP1)];                                                                    \
        double a = (double)s0[j * (STEP0)], b = (double)raw1;                                        \
        double h = a + b * hi;                                                                       \
        if (lo_negative || !(b >= 0.0)) {                                                            \
            all_nonnegative &= (b >= 0.0);                                                           \
            double g = a + b * lo;                                                                   \
            if (g > h || g != g) h = g;                                                              \
        }                                                                                            \
        if (j & 1) odd += h; else even += h;                                                         \
        positions[m] = (int64_t)j;                                                                   \
        column0[m] = a;                                                                              \
        column1[m] = b;                                                                              \
        highs[m] = h;                                                                                \
        m += (h >= (LEVEL));                                                                         \
        if (candidates != NULL) {                                                                    \
            candidates[c] = raw1;                                                                    \
            c += (b >= candidate_level);                                                             \
        }                                                                                            \
    }

#define REACH_LOOP(NAME, T)                                                                        \
    static Py_ssize_t NAME(const T *restrict s0, Py_ssize_t step0, const T *restrict s1,             \
                           Py_ssize_t step1, Py_ssize_t n, double lo, double hi, double level,       \
                           const double *restrict levels, Py_ssize_t step_level,                     \
                           double candidate_level, int64_t *restrict positions,                      \
                           double *restrict column0, double *restrict column1,                       \
                           double *restrict highs, T *restrict candidates, Py_ssize_t *found,        \
                           double *total, int *monotone)                                             \
    {                                                                                                \
        Py_ssize_t m = 0, c = 0;                                                                     \
        double even = 0.0, odd = 0.0;                                                                \
        int lo_negative = !(lo >= 0.0), all_nonnegative = 1;                                         \
        if (levels != NULL)                                                                          \
            REACH_BODY(T, step0, step1, levels[j * step_level])                                         \
        else if (step0 == 1 && step1 == 1)                                                           \
            REACH_BODY(T, 1, 1, level)                                                               \
        else                                                                                         \
            REACH_BODY(T, step0, step1, level)                                                       \
        *found = c;                                                                                  \
        *total = even + odd;                                                                         \
        *monotone = !lo_negative && all_nonnegative;                                                 \
        return m;                                                                                    \
    }

REACH_LOOP(reach_float64, double)
REACH_LOOP(reach_float32, float)

static PyObject *reach(PyObject *Py_UNUSED(self), PyObject *args)
{
    PyObject *o0, *o1, *olevel, *opositions, *ocolumn0, *ocolumn1, *ohigh, *ocandidates;
    double lo, hi, candidate_level;
    if (!PyArg_ParseTuple(args, "OOddOdOOOOO:reach", &o0, &o1, &lo, &hi, &olevel, &candidate_level,
                          &opositions, &ocolumn0, &ocolumn1, &ohigh, &ocandidates))
        return NULL;
    Held held[8];
    memset(held, 0, sizeof(held));
    PyObject *result = NULL;
    if (take_buffer(o0, &held[0], 0, "s0", 0, 0, 0) != 0) goto done;
    Py_ssize_t n = held[0].view.shape[0];
    char kind = kind_of(&held[0].view);
    if (take_buffer(o1, &held[1], 0, "s1", kind, n, 1) != 0) goto done;
    double level = 0.0;
    if (PyFloat_Check(olevel) || PyLong_Check(olevel)) {
        level = PyFloat_AsDouble(olevel);
        if (level == -1.0 && PyErr_Occurred()) goto done;
    } else {
        if (take_buffer(olevel, &held[2], 0, "level", 'd', n, 1) != 0) goto done;
    }
    if (take_buffer(opositions, &held[3], 1, "positions", 'i', n, 0) != 0) goto done;
    if (take_buffer(ocolumn0, &held[4], 1, "column0", 'd', n, 0) != 0) goto done;
    if (take_buffer(ocolumn1, &held[5], 1, "column1", 'd', n, 0) != 0) goto done;
    if (take_buffer(ohigh, &held[6], 1, "high", 'd', n, 0) != 0) goto done;
    if (ocandidates != Py_None && take_buffer(ocandidates, &held[7], 1, "candidates", kind, n, 0) != 0)
        goto done;
    for (int i = 3; i < 8; i++) {
        if (held[i].held && !PyBuffer_IsContiguous(&held[i].view, 'C')) {
            PyErr_SetString(PyExc_ValueError, "the output buffers must be contiguous");
            goto done;
        }
    }
    Py_ssize_t itemsize = held[0].view.itemsize;
    for (int i = 0; i < 3; i++) {
        if (held[i].held && held[i].view.strides[0] % held[i].view.itemsize != 0) {
            PyErr_SetString(PyExc_ValueError, "the rows and levels must be strided by whole elements");
            goto done;
        }
    }
    Py_ssize_t step0 = held[0].view.strides[0] / itemsize, step1 = held[1].view.strides[0] / itemsize;
    const double *levels = held[2].held ? (const double *)held[2].view.buf : NULL;
    Py_ssize_t step_level = held[2].held ? held[2].view.strides[0] / 8 : 0;
    int64_t *positions = (int64_t *)held[3].view.buf;
    double *column0 = (double *)held[4].view.buf, *column1 = (double *)held[5].view.buf;
    double *highs = (double *)held[6].view.buf;
    void *candidates = held[7].held ? held[7].view.buf : NULL;
    Py_ssize_t m, found = 0;
    double total;
    int monotone;
    Py_BEGIN_ALLOW_THREADS
    if (kind == 'd')
        m = reach_float64((const double *)held[0].view.buf, step0, (const double *)held[1].view.buf, step1, n,
                          lo, hi, level, levels, step_level, candidate_level, positions, column0, column1,
                          highs, (double *)candidates, &found, &total, &monotone);
    else
        m = reach_float32((const float *)held[0].view.buf, step0, (const float *)held[1].view.buf, step1, n,
                          lo, hi, level, levels, step_level, candidate_level, positions, column0, column1,
                          highs, (float *)candidates, &found, &total, &monotone);
    Py_END_ALLOW_THREADS
    result = Py_BuildValue("nndO", m, found, total, monotone ? Py_True : Py_False);
done:
    release(held, 8);
    return result;
}

static PyMethodDef methods[] = {
    {"reach", reach, METH_VARARGS,
     "reach(s0, s1, lo, hi, level, candidate_level, positions, column0, column1, high, candidates)"
     " -> (count, candidate_count, total, monotone)\n\n"
     "The largest v over [lo, hi] of each element (s0 + lambda s1), the elements at or above their\n"
     "level (a number, or a float64 array of one per element) written to the output buffers, the\n"
     "total of the largest v, the entries of s1 at or above candidate_level written to candidates\n"
     "(None: not gathered), and whether lo >= 0 and s1 >= 0 throughout (then v at lo is the\n"
     "smallest). See copslp._screening.reaching_extremes."},
    {NULL, NULL, 0, NULL}};

static struct PyModuleDef module = {PyModuleDef_HEAD_INIT, "_kernels",
                                    "The fused screening pass of one multiplier.", -1, methods,
                                    NULL, NULL, NULL, NULL};

PyMODINIT_FUNC PyInit__kernels(void) { return PyModule_Create(&module); }
