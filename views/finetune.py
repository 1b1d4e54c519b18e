"""Fine-tuning: can we adapt an open model to our data with full fine-tuning, LoRA or QLoRA on this GPU,
how long does it take and what does it cost? Every GPU type side by side, the cheapest that fits."""

from dataclasses import replace

import streamlit as st

from engine.charts import finetune_breakdown, finetune_cost_time, finetune_memory_by_gpu
from engine.estimate.finetune import METHODS, TARGETS, FinetuneInput, estimate_finetune
from engine.artifacts import latest_calibration
from engine.estimate.finetune_stacks import get_stack, stack_ids, stack_methods
from engine.estimate.sensitivity import cheapest_fits, finetune_by_gpu, finetune_longest_context
from engine.units import format_bytes, format_count, format_duration_hours, format_sci
from ui.currency import current_currency, price_input
from ui.widgets import downloads, gpu_picker, model_picker, money, quantity_input, run_engine

METHOD_NAMES = {"full": "Full fine-tune", "lora": "LoRA", "qlora": "QLoRA"}
STACK_NAMES = {"hf": "Hugging Face + PEFT", "torchtune": "torchtune", "unsloth": "Unsloth"}

st.title("Fine-tuning")
st.caption("Adapt an open model to your data: full fine-tuning (the training memory model), LoRA (Hu et al. 2021: "
           "frozen bf16 weights, r·(d_in + d_out) trainable per adapted layer) or QLoRA (Dettmers et al. 2023: "
           "NF4 weights at 4.127 bits, bf16 adapters, paged 32-bit AdamW). Every assumption is editable.")

c1, c2, c3 = st.columns(3)
with c1:
    st.subheader("Model & data")
    spec = model_picker(key="ft-model")
    tokens = quantity_input("Tokens in your data", "40M", key="ft-tokens",
                            help="e.g. 40M; the data-check page counts them for you")
    epochs = st.number_input("Epochs", 0.1, 100.0, 1.0, 0.5, key="ft-epochs", help="passes over the data")
    s1, s2 = st.columns(2)
    seq_len = s1.number_input("Sequence length", 1, 1_000_000, min(spec.context, 2048), key=f"ft-seq-{spec.id}")
    batch = s2.number_input("Micro-batch per GPU", 1, 4096, 1, key="ft-batch")
with c2:
    st.subheader("Method")
    method = st.radio("Method", METHODS, index=METHODS.index("qlora"), horizontal=True, key="ft-method",
                      format_func=METHOD_NAMES.get)
    adapters = method != "full"
    r1, r2 = st.columns(2)
    rank = r1.number_input("LoRA rank r", 1, 65_536, 16, key="ft-rank", disabled=not adapters)
    alpha = r2.number_input("LoRA alpha", 0.5, 1e6, 32.0, key="ft-alpha", disabled=not adapters,
                            help="scales the update by alpha / r; no effect on memory or cost")
    target = st.selectbox("Adapt which layers", TARGETS, index=TARGETS.index("all-linear"), key="ft-target",
                          disabled=not adapters,
                          help="qv: q and v projections (PEFT's default); attention: q, k, v, o; all-linear: attention "
                               "and MLP, as the QLoRA paper recommends")
    ckpt = st.checkbox("Gradient checkpointing", True, key="ft-ckpt",
                       help="keeps only each layer's input for backward and recomputes the rest: one more forward pass")
    stack_id = st.selectbox("Software stack", stack_ids(), key="ft-stack", format_func=lambda x: STACK_NAMES.get(x, x),
                            help="how the framework holds the logits and loss, where checkpoints live, its optimizer "
                                 "and speed (engine/catalog/stacks.toml, cited)")
with c3:
    st.subheader("Hardware & price")
    gpu = gpu_picker(key="ft-gpu", default="rtx-4090")
    n_gpus = st.number_input("Number of GPUs", 1, 100_000, 1, key="ft-gpus",
                             help="more than one: data parallel, with FSDP / ZeRO-3 sharding")
    calibration = latest_calibration()
    measured = False
    if calibration and calibration.get("mfu"):
        measured = st.toggle("Use the lab's measured MFU", False, key="ft-measured",
                             help=f"{float(calibration['mfu']):.1%} measured by calibrate on {calibration['device_name']}")
    mfu = None if measured else st.slider("MFU", 0.05, 0.80, float(gpu.typical_mfu), 0.01, key=f"ft-mfu-{gpu.id}",
                                          help="model FLOPs utilization; QLoRA's dequantization usually lowers it")
    price = price_input("Price per GPU-hour", gpu.price_usd_per_hour, key=f"ft-price-{gpu.id}")
    host_gib = st.number_input("Host (CPU) memory, GiB", 1.0, 1e5, 64.0, 8.0, key="ft-host",
                               help="for offloaded activation checkpoints and paged optimizer state")

# The stack's defaults, each editable; a stack that does not model the method says so in one line.
if method not in stack_methods(stack_id):
    st.error(f"stack {stack_id} does not support method {method} here; it supports {', '.join(stack_methods(stack_id))}")
    st.stop()
stack = get_stack(stack_id, method)
with st.expander(f"Stack assumptions: {stack.name}"):
    a1, a2, a3, a4 = st.columns(4)
    loss_chunks = a1.number_input("Loss chunks", 1, 1024, stack.loss_chunks, key=f"ft-chunks-{stack_id}",
                                  help=f"logits {stack.logits_resident:g} B held + {stack.logits_transient:g} B per "
                                       "chunk, per token × vocabulary entry")
    offload = a2.checkbox("Offload checkpoints to CPU", stack.offload_checkpoints, key=f"ft-offload-{stack_id}")
    context = a3.number_input("CUDA context, GiB", 0.0, 16.0, stack.cuda_context_gib, 0.1, key=f"ft-ctx-{stack_id}")
    frag = a4.number_input("Fragmentation", 0.0, 1.0, stack.fragmentation, 0.01, key=f"ft-frag-{stack_id}",
                           help="allocator fragmentation, a fraction of what is allocated")
    b1, b2 = st.columns(2)
    hfu_default = stack.hfu if stack.hfu is not None else float(gpu.typical_mfu)
    hfu = b1.slider("Hardware FLOPs utilization", 0.05, 1.0, float(hfu_default), 0.01,
                    key=f"ft-hfu-{stack_id}-{method}-{gpu.id}", disabled=measured or mfu != float(gpu.typical_mfu),
                    help="used when the MFU slider is left at the GPU's typical value: the stack's speed")
    dequant = b2.number_input("QLoRA dequantization efficiency", 0.01, 1.0, stack.dequant_efficiency, 0.01,
                              key=f"ft-deq-{stack_id}", disabled=method != "qlora",
                              help="fraction of memory bandwidth the NF4 → bf16 dequantization reaches")
    st.caption(f"Attention: {stack.attention}. Optimizer: {stack.optimizer}"
               + (" (paged)" if stack.paged else "") + (" (in backward)" if stack.optimizer_in_backward else "")
               + f". Sources ({stack.date}): {stack.source}")

if tokens is None:
    st.stop()

# The MFU slider left at the GPU's typical value: the stack's own speed (its hardware FLOPs utilization).
own_mfu = measured or mfu != float(gpu.typical_mfu)
inp = FinetuneInput(model=spec, tokens=tokens, epochs=float(epochs), gpu=gpu, method=method, gpus=int(n_gpus),
                    rank=int(rank), alpha=float(alpha), target=target, seq_len=int(seq_len), batch=int(batch),
                    gradient_checkpointing=ckpt, mfu=mfu if own_mfu else None, measured_mfu=measured,
                    price_usd_per_hour=price, zero=3 if n_gpus > 1 else 0, stack=stack_id, loss_chunks=int(loss_chunks),
                    offload_checkpoints=offload, host_memory_gib=float(host_gib), cuda_context_gib=float(context),
                    fragmentation=float(frag), hfu=None if own_mfu else float(hfu), dequant_efficiency=float(dequant))
est = run_engine(estimate_finetune, inp)

st.divider()
what = (f"{METHOD_NAMES[method]} of {spec.name} on {format_count(tokens)} tokens × {epochs:g} epoch"
        f"{'s' if epochs != 1 else ''}")
where = f"{est.gpus} × {gpu.name}" if est.gpus > 1 else f"one {gpu.name}"
used = f"{format_bytes(est.total_bytes_per_gpu + est.overhead_bytes)} of {format_bytes(est.gpu_memory_bytes)} per GPU"
if est.fits:
    st.success(f"**Yes.** {what} fits {where} ({used}); it takes about "
               f"{format_duration_hours(est.wall_clock_hours)} and costs about {money(est.cost_usd)}.")
else:
    host = (f" The host needs {format_bytes(est.host_bytes)} for what the stack moves off the GPU, more than the "
            f"{format_bytes(est.host_memory_bytes or 0)} given." if not est.fits_host else "")
    st.warning(f"**No.** {what} does not fit {where}: it needs {used}.{host} "
               "The table below gives the smallest count of each GPU type that holds it.")
m = st.columns(5)
m[0].metric("Fits", "yes" if est.fits else "no", help=est.parallelism)
m[1].metric("Memory per GPU", format_bytes(est.total_bytes_per_gpu + est.overhead_bytes),
            help=f"of {format_bytes(est.gpu_memory_bytes)}, incl. {format_bytes(est.overhead_bytes)} fixed overhead")
m[2].metric("Trainable parameters", format_count(est.trainable_params),
            help=f"{est.trainable_params:,} of {est.total_params:,} ({est.trainable_params / est.total_params:.3%})")
m[3].metric("Wall clock", format_duration_hours(est.wall_clock_hours),
            help=f"{format_count(est.gpu_hours)} GPU-hours at MFU {est.mfu:.0%} ({est.mfu_basis})")
m[4].metric("Cost", money(est.cost_usd), help=f"{format_count(est.gpu_hours)} GPU-hours × {money(est.price_usd_per_hour)} per GPU-hour")
m = st.columns(5)
m[0].metric("Longest sequence that fits", f"{est.max_seq_len_fits:,}",
            help=f"tokens per sequence at batch {est.batch} on {gpu.name}, {STACK_NAMES.get(stack_id, stack_id)}")
m[1].metric("Tokens/s per GPU", f"{est.tokens_per_second:,.0f}",
            help=f"hardware FLOPs utilization {est.hfu:.0%}" + (f"; QLoRA dequantization {format_duration_hours(est.dequant_hours)} "
                                                                  "of GPU time" if est.method == "qlora" else ""))
m[2].metric("On the host", format_bytes(est.host_bytes), help="offloaded checkpoints and paged optimizer state, of "
            f"{format_bytes(est.host_memory_bytes or 0)} host memory" + ("" if est.fits_host else ": does NOT fit"))
m[3].metric("QLoRA dequantization", format_duration_hours(est.dequant_hours) if est.method == "qlora" else "—",
            help="GPU time spent turning NF4 weights back into bf16, every micro-batch, in every pass")
st.plotly_chart(finetune_breakdown(est.to_dict()), width="stretch", key="ft-breakdown")
st.caption(f"Per GPU: weights {format_bytes(est.weights_bytes)}, adapters {format_bytes(est.adapter_bytes)}, "
           f"gradients {format_bytes(est.gradients_bytes)}, optimizer {format_bytes(est.optimizer_bytes)}, "
           f"activations {format_bytes(est.activations_bytes)}, checkpoints {format_bytes(est.checkpoint_bytes)}, "
           f"logits and loss {format_bytes(est.logits_bytes)}. {format_sci(est.flops_total)} model FLOPs "
           f"({format_sci(est.flops_per_token)} per token). " + "; ".join(est.assumptions) + ".")

# The other GPU types run at the stack's own speed on each unless the user set an MFU (or measured one).
table = run_engine(finetune_by_gpu, inp if own_mfu else replace(inp, hfu=None))
best = cheapest_fits(table)
st.subheader("Which GPUs fit, and the cheapest")
chosen = best[best["method"] == method]
if chosen.empty:
    st.warning(f"No GPU type in the catalog holds {METHOD_NAMES[method]} of this model within the counts tried.")
else:
    row = chosen.iloc[0]
    single = table[(table["method"] == method) & table["fits"] & (table["gpus"] == 1)]["gpu"].tolist()
    st.info(f"Cheapest for {METHOD_NAMES[method]}: **{int(row['gpus'])} × {row['name']}**, about "
            f"{money(row['cost_usd'])} and {format_duration_hours(row['wall_clock_hours'])}. "
            + (f"A single GPU suffices on: {', '.join(single)}." if single else "No single GPU holds it."))
cols = st.columns(len(best) or 1)
for col, row in zip(cols, best.itertuples()):
    col.metric(f"Cheapest {METHOD_NAMES[row.method]}", money(row.cost_usd), help=row.parallelism,
               delta=f"{int(row.gpus)} × {row.gpu}, {format_duration_hours(row.wall_clock_hours)}",
               delta_color="off", delta_arrow="off")

st.plotly_chart(finetune_memory_by_gpu(table), width="stretch")
st.plotly_chart(finetune_cost_time(table, current_currency()), width="stretch")

st.subheader("Side by side: every GPU type × full, LoRA, QLoRA")
shown = table[["gpu", "name", "memory_gib"]].drop_duplicates("gpu").reset_index(drop=True)
for method_id in METHODS:  # one block of columns per method, GPUs in catalog order
    part = table[table["method"] == method_id].set_index("gpu")
    shown[f"{method_id} gpus"] = shown["gpu"].map(part["gpus"]).astype("Int64")
    shown[f"{method_id} GiB per GPU"] = shown["gpu"].map(part["total"] / 2**30)
    shown[f"{method_id} hours"] = shown["gpu"].map(part["wall_clock_hours"])
    shown[f"{method_id} cost ({current_currency().code})"] = shown["gpu"].map(part["cost_usd"] * current_currency().per_usd)
st.dataframe(shown, hide_index=True, width="stretch", key="ft-table",
             column_config={c: st.column_config.NumberColumn(c, format="%.2f") for c in shown.columns
                            if not c.endswith("gpus") and c not in ("gpu", "name", "memory_gib")})
st.caption("Each GPU type at its smallest fitting count (1, 2, 4, ... GPUs; more than one data parallel with "
           "FSDP / ZeRO-3 sharding of weights, gradients and optimizer). Empty cells: no fit within 1024 GPUs. "
           "QLoRA takes longer than LoRA at the same MFU: every micro-batch dequantizes its NF4 weights again. "
           "Empty cells under a stack that does not model a method.")
st.subheader("The longest sequence that fits each GPU")
longest = run_engine(finetune_longest_context, inp)
wide = longest[["gpu", "name", "memory_gib"]].drop_duplicates("gpu").reset_index(drop=True)
for (method_id, stack_name), part in longest.groupby(["method", "stack"], sort=False):
    wide[f"{METHOD_NAMES[method_id]} · {STACK_NAMES.get(stack_name, stack_name)}"] = (
        wide["gpu"].map(part.set_index("gpu")["max_seq_len_fits"]).astype("Int64"))
st.dataframe(wide, hide_index=True, width="stretch", key="ft-longest")
st.caption(f"Tokens per sequence at batch {int(batch)} on one GPU of each type, with this page's rank, layers, "
           "checkpointing and host memory; empty: the stack does not model the method; 0: not even one token fits.")
downloads("finetune-estimate", est.to_dict(), table)
