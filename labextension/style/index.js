import './index.css';
import './history.css';
import './chips.css';
import './settings.css';
