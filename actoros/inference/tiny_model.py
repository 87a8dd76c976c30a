"""A tiny random Llama for fast tests of the real engine path.

``make_tiny_llama(folder)`` writes a Hugging Face folder that vLLM and transformers load like
any model: a 2-layer Llama (hidden 128, ``head_dim`` 32) with random weights, a byte-level BPE
tokenizer trained here in-process on a few lines of text, a ChatML chat template and a
generation config. It needs no network and takes about a second to write; vLLM starts on it
in seconds rather than the real model's half minute (``load_format="dummy"`` even skips
reading the weights).

Its output is noise, but deterministic noise: greedy decoding gives the same tokens every
run, and byte-level BPE decodes any token sequence to text. Tests that need a known number of
tokens pass ``ignore_eos`` (a random model may emit the end token at any step).

Needs torch, transformers and tokenizers (the ``cpu``/``gpu`` extras bring them).
"""

from __future__ import annotations

from pathlib import Path

__all__ = ["CHAT_TEMPLATE", "make_tiny_llama"]

# ChatML, as SmolLM2 uses: one template for the tiny and the default model.
CHAT_TEMPLATE = (
    "{% for message in messages %}"
    "{{ '<|im_start|>' + message['role'] + '\n' + message['content'] + '<|im_end|>' + '\n' }}"
    "{% endfor %}"
    "{% if add_generation_prompt %}{{ '<|im_start|>assistant\n' }}{% endif %}"
)

_SPECIAL_TOKENS = ["<|endoftext|>", "<|im_start|>", "<|im_end|>"]

# Enough text for a few hundred merges; the byte alphabet covers everything else.
_CORPUS = [
    "The quick brown fox jumps over the lazy dog.",
    "An actor has a mailbox and handles one message at a time.",
    "Supervisors restart children that fail; the system keeps running.",
    "What is the capital of France? The capital of France is Paris.",
    "Agents ask the inference actor for completions and stream the tokens back.",
    "Hello, world! Numbers: 0 1 2 3 4 5 6 7 8 9 10 100 1000.",
    "user assistant system tool message content role reply request response",
]


def make_tiny_llama(
    folder: str | Path,
    *,
    vocab_size: int = 512,
    max_position_embeddings: int = 2048,
    seed: int = 0,
    dtype: str = "float32",
) -> Path:
    """Write the tiny model into ``folder`` (created if missing) and return it.

    The same arguments always give the same weights and tokenizer.

    ``dtype`` is float32 because vLLM 0.32's CPU attention kernel for bfloat16 uses Intel AMX
    without asking Linux for the AMX tile state first; with a model this small nothing else in
    the worker has asked for it (with SmolLM2 something has), and the worker dies of SIGILL.
    Calling ``torch.cpu._init_amx()`` in the worker avoids it; float32 needs no AMX. Start
    vLLM with ``dtype="float32"`` too: its ``"auto"`` turns a float32 model into bfloat16 on
    CPU.
    """
    import torch
    import transformers
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, processors, trainers

    out = Path(folder)
    out.mkdir(parents=True, exist_ok=True)

    bpe = Tokenizer(models.BPE(unk_token=None))
    bpe.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    bpe.decoder = decoders.ByteLevel()
    bpe.post_processor = processors.ByteLevel(trim_offsets=False)
    trainer = trainers.BpeTrainer(
        vocab_size=vocab_size,
        special_tokens=_SPECIAL_TOKENS,
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
        show_progress=False,
    )
    bpe.train_from_iterator(_CORPUS * 8, trainer=trainer)
    tokenizer = transformers.PreTrainedTokenizerFast(
        tokenizer_object=bpe,
        bos_token="<|im_start|>",
        eos_token="<|im_end|>",
        unk_token="<|endoftext|>",
        pad_token="<|im_end|>",
        model_max_length=max_position_embeddings,
    )
    tokenizer.chat_template = CHAT_TEMPLATE

    config = transformers.LlamaConfig(
        vocab_size=len(tokenizer),
        hidden_size=128,
        intermediate_size=256,
        num_hidden_layers=2,
        num_attention_heads=4,
        num_key_value_heads=2,
        head_dim=32,
        max_position_embeddings=max_position_embeddings,
        bos_token_id=tokenizer.bos_token_id,
        eos_token_id=tokenizer.eos_token_id,
        pad_token_id=tokenizer.pad_token_id,
        tie_word_embeddings=True,
    )
    torch.manual_seed(seed)
    model = transformers.LlamaForCausalLM(config).to(getattr(torch, dtype))
    model.generation_config = transformers.GenerationConfig(
        bos_token_id=config.bos_token_id,
        eos_token_id=config.eos_token_id,
        pad_token_id=config.pad_token_id,
    )
    model.save_pretrained(str(out))
    tokenizer.save_pretrained(str(out))
    return out
