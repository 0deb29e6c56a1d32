"""Learn: the key ideas of flow matching in plain words, with their equations and the view that shows each."""

from __future__ import annotations

import streamlit as st

from flowscope_ui import widgets

widgets.header("Learn", "The key ideas of “Flow Matching for Generative Modeling” (Lipman, Chen, Ben-Hamu, Nickel, "
               "Le; ICLR 2023) in plain words, each with its equations and a link to the view that shows it. "
               "Time runs from t = 0 (noise) to t = 1 (data).")


def idea(title: str, text: str, equations: list[str], links: list[tuple[str, str]]) -> None:
    """One idea: a heading, a paragraph, its equations and links to the views that show it."""
    st.subheader(title)
    st.markdown(text)
    for equation in equations:
        st.latex(equation)
    for column, (page, label) in zip(st.columns(len(links)), links, strict=True):
        column.page_link(page, label=label, icon=":material/arrow_forward:")
    st.divider()


idea("1 · Diffusion vs flow matching",
     "A diffusion model adds noise to data step by step and learns to undo it (a score or noise predictor); its "
     "path from data to noise is fixed by the noising process, and sampling follows a stochastic or "
     "probability-flow equation with many steps. **Flow matching** learns the velocity field v_θ of an ordinary "
     "differential equation directly, by regression, without simulating anything during training. Any "
     "probability path can be used, the diffusion paths included, and some (the OT path) give straighter "
     "trajectories, hence good samples in fewer solver steps.",
     [r"\frac{d}{dt}\,x_t = v_\theta(x_t, t), \qquad x_0 \sim \mathcal{N}(0, I), \qquad x_1 \approx \text{data}"],
     [("views/paths.py", "See it: Paths"), ("views/compare.py", "Compare paths")])

idea("2 · Probability paths and vector fields",
     "A **probability path** p_t moves the noise distribution p_0 to (nearly) the data distribution p_1 = q. A "
     "**vector field** u_t generates it when particles that follow u_t stay distributed as p_t; this is the "
     "continuity equation. Flow matching regresses v_θ onto u_t, but u_t of the data is unknown: the loss on "
     "its own cannot be computed.",
     [r"\frac{\partial p_t}{\partial t} + \nabla \cdot \big(p_t\, u_t\big) = 0, \qquad "
      r"\mathcal{L}_{FM}(\theta) = \mathbb{E}_{t,\, x \sim p_t}\, \lVert v_\theta(x, t) - u_t(x) \rVert^2"],
     [("views/paths.py", "See p_t and x_t over time"), ("views/home.py", "The flow")])

idea("3 · Conditional vs marginal fields, and why their losses share gradients",
     "Build the path from one data point at a time: p_t(x | x1) goes from noise to (nearly) x1, driven by a simple "
     "**conditional field** u_t(x | x1). Mixing over the data gives the marginal path p_t(x), and the "
     "**marginal field** u_t(x) is the average of the conditional fields weighted by the posterior "
     "w(x1 | x, t): how likely each data point is to have produced x at time t (Theorem 1). Regressing the "
     "easy per-sample targets (the CFM loss) has the same gradients as regressing the marginal field "
     "(Theorem 2): the two losses differ by a constant, the irreducible variance of the targets, which is why "
     "the CFM loss never reaches zero. For a dataset the weights are a softmax, and the exact marginal field "
     "can be computed and drawn.",
     [r"u_t(x) = \sum_i w_i(x, t)\, u_t(x \mid x_1^{i}), \qquad "
      r"w_i(x, t) = \operatorname{softmax}_i\Big(-\frac{\lVert x - \mu_t(x_1^{i}) \rVert^2}{2\sigma_t^2}\Big)",
      r"\mathcal{L}_{CFM}(\theta) = \mathbb{E}_{t,\, x_1 \sim q,\, x \sim p_t(\cdot \mid x_1)} "
      r"\lVert v_\theta(x, t) - u_t(x \mid x_1) \rVert^2 = \mathcal{L}_{FM}(\theta) + \text{const}, \qquad "
      r"\nabla_\theta \mathcal{L}_{CFM} = \nabla_\theta \mathcal{L}_{FM}"],
     [("views/fields.py", "See it: Fields (weights and irreducible loss)")])

idea("4 · Gaussian conditional paths",
     "The paper uses Gaussian conditional paths: a mean μ_t(x1) and a width σ_t move the noise onto x1 by an "
     "affine flow, and the conditional field then has a closed form (Theorem 3). The diffusion paths are special "
     "cases: variance exploding (VE: the mean stays at x1, the noise shrinks) and variance preserving (VP).",
     [r"p_t(x \mid x_1) = \mathcal{N}\big(x;\ \mu_t(x_1),\ \sigma_t(x_1)^2 I\big), \qquad "
      r"\psi_t(x_0) = \sigma_t\, x_0 + \mu_t(x_1)",
      r"u_t(x \mid x_1) = \frac{\sigma_t'}{\sigma_t}\,\big(x - \mu_t(x_1)\big) + \mu_t'(x_1)",
      r"\text{VE: } \mu_t = x_1,\ \sigma_t = \sigma_{1-t}; \qquad "
      r"\text{VP: } \mu_t = \alpha_{1-t}\, x_1,\ \sigma_t = \sqrt{1 - \alpha_{1-t}^2}"],
     [("views/fields.py", "The conditional field of a point"), ("views/train.py", "Train with any path")])

idea("5 · Optimal transport paths are straight",
     "The paper's OT path moves the mean linearly and shrinks the width linearly. Each conditional flow is then "
     "the optimal transport map between two Gaussians: every particle travels a **straight line at constant "
     "speed**, and the regression target x1 − (1 − σ_min) x0 does not depend on t. The marginal trajectories are "
     "not exactly straight (paths of different data points cross), but much straighter than the diffusion "
     "paths', so an ODE solver needs fewer evaluations (NFE). Pairing noise and data by minibatch optimal "
     "transport (OT-CFM, Tong et al. 2024) straightens them further.",
     [r"\mu_t(x_1) = t\, x_1, \qquad \sigma_t = 1 - (1 - \sigma_{\min})\, t, \qquad "
      r"\psi_t(x_0) = \big(1 - (1 - \sigma_{\min})\, t\big)\, x_0 + t\, x_1",
      r"u_t(x \mid x_1) = \frac{x_1 - (1 - \sigma_{\min})\, x}{1 - (1 - \sigma_{\min})\, t}"],
     [("views/compare.py", "Compare straightness and NFE"), ("views/gallery.py", "OT vs VP vs VE models")])
