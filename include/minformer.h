/* minformer: minimal vision transformers in C11. The public API.
 *
 * core.h   status codes, errors, random numbers, threads
 * data.h   MNIST / Fashion-MNIST / CIFAR-10 loaders, augmentation, batches
 * model.h  the configurable encoder, its forward and backward passes, AdamW
 * train.h  the training loop and evaluation
 * image.h  canvases, PNG writing, image reading, charts
 * checkpoint.h  safetensors checkpoints: save, load, validate, resume
 * run.h    a run's identity, its log line, resuming, the per-run lock
 *
 * The application on top of it (app/: the command line, the experiment
 * grids, the figures) has headers of its own. */
#ifndef MINFORMER_H
#define MINFORMER_H

#include "minformer/core.h"
#include "minformer/data.h"
#include "minformer/model.h"
#include "minformer/train.h"
#include "minformer/checkpoint.h"
#include "minformer/run.h"
#include "minformer/image.h"

#endif
