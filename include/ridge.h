/* ridge.h — the public API of the ridge library, one include for users.
 *
 * Each layer's header documents its functions (ownership at the declaration):
 *   core/error.h        rg_status, rg_err
 *   core/dtype.h        tensor element types (GGUF numbering)
 *   core/quant.h        quantized block formats, reference (de)quantization
 *   formats/gguf.h      GGUF reader (validated, memory-mapped) and writer
 *   model/hparams.h     hyper-parameters from metadata
 *   tok/tokenizer.h     SentencePiece and byte-level BPE tokenizers
 *   tok/chat_template.h chat prompt formatting */
#ifndef RIDGE_H
#define RIDGE_H

#include "core/dtype.h"
#include "core/error.h"
#include "core/quant.h"
#include "formats/gguf.h"
#include "model/hparams.h"
#include "tok/chat_template.h"
#include "tok/tokenizer.h"

#define RIDGE_VERSION "0.1.0"

#endif
