import './index.css';
import './chips.css';
