/* The run identity read from an already parsed JSON object: for the files
 * that embed one (an experiment run's run.json, lr.json and result.json). */
#ifndef MF_RUN_JSON_H
#define MF_RUN_JSON_H

#include "base/json.h"
#include "minformer/run.h"

/* obj must be an object of string members (see mf_run_identity_parse);
 * MF_ERR_FORMAT "WHAT: problem" otherwise. */
mf_status mf_run_identity_from_object(const mf_json *obj, mf_run_identity *id, const char *what,
                                      mf_error *err);

#endif
