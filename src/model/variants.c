/* The registry of attention variants: entry k of each list is kind k of
 * mf_qk_kind / mf_vo_kind (include/minformer/model.h lists the kinds in this
 * order). A new variant is its entry (in its own file) and one line here. */
#include <stdio.h>
#include <string.h>

#include "model/variants.h"

static const mf_qk_variant *const qk_table[] = {
    &qk_separate,  /* MF_QK_SEPARATE */
    &qk_shared,    /* MF_QK_SHARED */
    &qk_collapsed, /* MF_QK_COLLAPSED */
    &qk_symmetric, /* MF_QK_SYMMETRIC */
    &qk_cholesky,  /* MF_QK_CHOLESKY */
};

static const mf_vo_variant *const vo_table[] = {
    &vo_separate,  /* MF_VO_SEPARATE */
    &vo_collapsed, /* MF_VO_COLLAPSED */
    &vo_none,      /* MF_VO_NONE */
    &vo_shaped,    /* MF_VO_SHAPED */
};

enum {
    QK_COUNT = (int)(sizeof qk_table / sizeof *qk_table),
    VO_COUNT = (int)(sizeof vo_table / sizeof *vo_table)
};

int qk_variant_count(void) { return QK_COUNT; }
int vo_variant_count(void) { return VO_COUNT; }
const mf_qk_variant *qk_variant(int kind) { return kind >= 0 && kind < QK_COUNT ? qk_table[kind] : NULL; }
const mf_vo_variant *vo_variant(int kind) { return kind >= 0 && kind < VO_COUNT ? vo_table[kind] : NULL; }

const char *mf_qk_name(mf_qk_kind k)
{
    const mf_qk_variant *v = qk_variant((int)k);
    return v ? v->name : "?";
}

const char *mf_vo_name(mf_vo_kind k)
{
    const mf_vo_variant *v = vo_variant((int)k);
    return v ? v->name : "?";
}

/* "a, b, c": the names of a list, for a usage error. */
static void list_names(char *out, size_t cap, int count, const char *(*name)(int))
{
    size_t len = 0;
    out[0] = '\0';
    for (int i = 0; i < count && len < cap; i++)
        len += (size_t)snprintf(out + len, cap - len, "%s%s", i ? ", " : "", name(i));
}

static const char *qk_name_at(int i) { return qk_table[i]->name; }
static const char *vo_name_at(int i) { return vo_table[i]->name; }

mf_status mf_qk_parse(const char *s, mf_qk_kind *out, mf_error *err)
{
    for (int i = 0; i < QK_COUNT; i++)
        if (!strcmp(s, qk_table[i]->name)) {
            *out = (mf_qk_kind)i;
            return MF_OK;
        }
    char names[256];
    list_names(names, sizeof names, QK_COUNT, qk_name_at);
    return mf_fail(err, MF_ERR_CONFIG, "unknown --qk '%s' (choose %s)", s, names);
}

mf_status mf_vo_parse(const char *s, mf_vo_kind *out, mf_error *err)
{
    for (int i = 0; i < VO_COUNT; i++)
        if (!strcmp(s, vo_table[i]->name)) {
            *out = (mf_vo_kind)i;
            return MF_OK;
        }
    char names[256];
    list_names(names, sizeof names, VO_COUNT, vo_name_at);
    return mf_fail(err, MF_ERR_CONFIG, "unknown --vo '%s' (choose %s)", s, names);
}
